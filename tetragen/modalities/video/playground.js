// The video modality's playground panel: a prompt ("a sneaker moving left") → clips from /v1/videos/generations,
// each a looping GIF shown as it plays. Loaded after the page's app.js; it adds its panel through the page's plug-in
// point (window.tetragenPlayground) and uses only what the page shares.
"use strict";

(() => {
  const {$, state, call, showError, clearError, numberField, busy, idle, onSubmit} = window.tetragenPlayground.kit;

  function prepare(card) {
    const classes = card.classes || null;
    $("video-prompt").placeholder = classes && classes.length ? `a ${classes[0]}` : "a sneaker moving left";
    $("video-note").textContent = classes
      ? `It draws ${classes.length} classes: a thing and its motion (${classes.slice(0, 3).join(", ")}, …).`
      : "It reads the prompt as text.";
    $("video-clips").replaceChildren();
    $("video-result").dataset.state = "idle";
    $("video-meta").textContent = "";
  }

  async function make() {
    if (state.busy) return;
    clearError();
    const card = state.model;
    const body = {model: card.id, prompt: $("video-prompt").value || $("video-prompt").placeholder,
                  n: numberField("video-n") || 1, seed: numberField("video-seed")};
    if (body.seed === undefined) delete body.seed;
    const result = $("video-result");
    result.dataset.state = "drawing";
    $("video-meta").textContent = "making…";
    const started = performance.now();
    const controller = new AbortController();
    busy(controller, "make-video");
    try {
      const response = await call("POST", "/v1/videos/generations", body, controller.signal);
      const out = await response.json();
      $("video-clips").replaceChildren(...out.data.map((d, i) => {
        const img = document.createElement("img");
        img.className = "clip";
        img.alt = `clip ${i + 1}: ${d.revised_prompt}`;
        img.src = `data:image/gif;base64,${d.b64_json}`;
        return img;
      }));
      result.dataset.state = "done";
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      $("video-meta").textContent = `seed ${out.seed} · ${out.frames} frames at ${out.fps} fps · ${seconds} s`
                                    + (out.warnings ? ` · ${out.warnings.join("; ")}` : "");
    } catch (e) {
      result.dataset.state = "error";
      $("video-meta").textContent = "";
      if (e.name !== "AbortError") showError(e);
    } finally {
      idle("make-video");
    }
  }

  window.tetragenPlayground.addPanel({
    id: "video", label: "Video", makes: "video", wants: ["prompt", "sample"],
    describe(card) {
      return card.classes ? `a thing and its motion (${card.classes.length} classes) → clips`
                          : "a text prompt → clips";
    },
    fields: {prompt: "video-prompt", n: "video-n", seed: "video-seed"},
    html: `
        <label class="field wide">Prompt
          <input id="video-prompt" type="text" spellcheck="false">
        </label>
        <p id="video-note" class="note"></p>
        <fieldset class="controls">
          <legend>Video</legend>
          <label class="field">clips <input id="video-n" type="number" min="1" max="16" step="1" value="4"></label>
          <label class="field">seed <span class="hint">blank: random</span>
            <input id="video-seed" type="number" min="0" step="1" placeholder="random"></label>
        </fieldset>
        <div class="actions">
          <button id="make-video" type="submit">Make</button>
          <span id="video-meta" class="meta"></span>
        </div>
        <div id="video-result" data-state="idle"><div id="video-clips"></div></div>`,
    build(form) { form.addEventListener("submit", onSubmit(make)); },
    choose(card) { if (card.makes === "video") prepare(card); },
  });
})();

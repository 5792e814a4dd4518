// The image modality's playground panel: images from a prompt, of a class, or unconditional, drawn by
// /v1/images/generations and shown as a grid. Loaded after the page's app.js; it adds its panel through the page's
// plug-in point (window.tetragenPlayground) and uses only what the page shares there.
"use strict";

(() => {
  const {$, state, call, showError, clearError, numberField, busy, idle, onSubmit} = window.tetragenPlayground.kit;


  function prepareImages(card) {
    const caps = new Set(card.capabilities);
    const prompted = caps.has("prompt");
    const classes = !prompted && card.classes;
    $("image-prompt-field").hidden = !prompted;
    $("image-class-field").hidden = !classes;
    $("image-note").hidden = prompted || !!classes;
    $("image-note").textContent = "This model is unconditional: it draws without a prompt.";
    const select = $("image-class");
    select.replaceChildren();
    if (classes) {
      const every = document.createElement("option");
      every.value = "";
      every.textContent = "every class in turn";
      select.append(every);
      for (const c of classes) {
        const o = document.createElement("option");
        o.value = c;
        o.textContent = c;
        select.append(o);
      }
    }
    $("image-grid").replaceChildren();
    $("image-grid").dataset.state = "idle";
    $("image-meta").textContent = "";
  }

  async function draw() {
    if (state.busy) return;
    clearError();
    const card = state.model;
    const caps = new Set(card.capabilities);
    const body = {model: card.id, n: numberField("image-n"), seed: numberField("image-seed"),
                  response_format: "b64_json"};
    if (caps.has("prompt")) body.prompt = $("image-prompt").value;
    else if (card.classes) body.prompt = $("image-class").value;
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    const grid = $("image-grid");
    grid.dataset.state = "drawing";
    grid.classList.add("waiting");
    $("image-meta").textContent = "drawing…";
    const started = performance.now();
    const controller = new AbortController();
    busy(controller, "draw");
    try {
      const doc = await (await call("POST", "/v1/images/generations", body, controller.signal)).json();
      const figures = doc.data.map((d, i) => {
        const fig = document.createElement("figure");
        const img = document.createElement("img");
        img.src = `data:image/png;base64,${d.b64_json}`;
        img.alt = d.revised_prompt ? `${d.revised_prompt} (${i + 1})` : `sample ${i + 1}`;
        fig.append(img);
        if (d.revised_prompt) {
          const cap = document.createElement("figcaption");
          cap.textContent = d.revised_prompt;
          fig.append(cap);
        }
        return fig;
      });
      grid.replaceChildren(...figures);
      grid.dataset.state = "done";
      const notes = doc.warnings ? ` · ${doc.warnings.join("; ")}` : "";
      const n = figures.length;
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      $("image-meta").textContent = `${n} image${n === 1 ? "" : "s"} · ${seconds} s${notes}`;
    } catch (e) {
      grid.dataset.state = "error";
      $("image-meta").textContent = "";
      if (e.name !== "AbortError") showError(e);
    } finally {
      grid.classList.remove("waiting");
      idle("draw");
    }
  }

  window.tetragenPlayground.addPanel({
    id: "images", label: "Images", makes: "image", wants: ["prompt", "sample"],
    describe(card) {
      const caps = new Set(card.capabilities);
      if (caps.has("prompt")) return "a text prompt → images";
      return card.classes ? `a class name (${card.classes.length} classes) → images`
                          : "nothing (unconditional) → images";
    },
    fields: {seed: "image-seed", prompt: "image-prompt", n: "image-n"},
    html: `
        <label id="image-prompt-field" class="field wide">Prompt
          <input id="image-prompt" type="text" spellcheck="false" placeholder="a large disc">
        </label>
        <label id="image-class-field" class="field wide">Class
          <select id="image-class"></select>
        </label>
        <p id="image-note" class="note"></p>
        <fieldset class="controls">
          <legend>Images</legend>
          <label class="field">n<input id="image-n" type="number" min="1" step="1" value="8"></label>
          <label class="field">seed <span class="hint">blank: random</span>
            <input id="image-seed" type="number" min="0" step="1" placeholder="random"></label>
        </fieldset>
        <div class="actions">
          <button id="draw" type="submit">Draw</button>
          <span id="image-meta" class="meta"></span>
        </div>
        <div id="image-grid" class="image-grid" data-state="idle"></div>`,
    build(form) { form.addEventListener("submit", onSubmit(draw)); },
    choose(card) { if (card.makes === "image") prepareImages(card); },
  });
})();

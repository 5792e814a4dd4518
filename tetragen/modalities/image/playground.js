// The image modality's playground panels: images from a prompt, of a class, or unconditional, drawn by
// /v1/images/generations and shown as a grid, with the sampling settings (steps, guidance, sampler) of a model whose
// card lists them (`sampling`); and an edit tab for a model that edits (an uploaded image redrawn at a strength, or
// inpainted where an uploaded mask is white) through /v1/images/edits. Loaded after the page's app.js; it adds its
// panels through the page's plug-in point (window.tetragenPlayground) and uses only what the page shares there.
"use strict";

(() => {
  const {$, state, call, showError, clearError, numberField, PageError, busy, idle, onSubmit} =
    window.tetragenPlayground.kit;


  // the conditions and sampling settings of one panel ("image" or "edit"), shown as the model's card says
  function prepareConditions(card, prefix) {
    const caps = new Set(card.capabilities);
    const prompted = caps.has("prompt");
    const classes = !prompted && card.classes;
    $(`${prefix}-prompt-field`).hidden = !prompted;
    $(`${prefix}-class-field`).hidden = !classes;
    $(`${prefix}-note`).hidden = prompted || !!classes;
    $(`${prefix}-note`).textContent = "This model is unconditional: it draws without a prompt.";
    const select = $(`${prefix}-class`);
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
    const sampling = card.sampling || {};
    $(`${prefix}-sampling`).hidden = !card.sampling;
    for (const [name, id] of [["steps", "steps"], ["guidance_scale", "guidance"]]) {
      const option = sampling[name];
      const input = $(`${prefix}-${id}`);
      $(`${prefix}-${id}-field`).hidden = !option;
      input.value = "";
      input.placeholder = option ? String(option.default) : "";
      if (option) {
        input.min = option.min;
        input.max = option.max;
        input.title = option.help;
      }
    }
    const samplers = $(`${prefix}-sampler`);
    samplers.replaceChildren();
    $(`${prefix}-sampler-field`).hidden = !sampling.sampler;
    for (const c of (sampling.sampler || {}).choices || []) {
      const o = document.createElement("option");
      o.value = c;
      o.textContent = c === sampling.sampler.default ? `${c} (default)` : c;
      o.selected = c === sampling.sampler.default;
      samplers.append(o);
    }
    $(`${prefix}-grid`).replaceChildren();
    $(`${prefix}-grid`).dataset.state = "idle";
    $(`${prefix}-meta`).textContent = "";
  }

  // what the panel asks: its condition (prompt or class) and the sampling settings that are filled in
  function conditionsOf(card, prefix) {
    const caps = new Set(card.capabilities);
    const body = {};
    if (caps.has("prompt")) body.prompt = $(`${prefix}-prompt`).value;
    else if (card.classes) body.prompt = $(`${prefix}-class`).value;
    if (card.sampling) {
      body.steps = numberField(`${prefix}-steps`);
      if (card.sampling.guidance_scale) body.guidance_scale = numberField(`${prefix}-guidance`);
      if (card.sampling.sampler && $(`${prefix}-sampler`).value !== card.sampling.sampler.default) {
        body.sampler = $(`${prefix}-sampler`).value;
      }
    }
    return body;
  }

  function showImages(grid, meta, doc, started) {
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
    meta.textContent = `${n} image${n === 1 ? "" : "s"} · ${seconds} s${notes}`;
  }

  // a request of one panel: the grid waits, then shows the images or the error
  async function send(prefix, button, path, body) {
    const grid = $(`${prefix}-grid`);
    grid.dataset.state = "drawing";
    grid.classList.add("waiting");
    $(`${prefix}-meta`).textContent = "drawing…";
    const started = performance.now();
    const controller = new AbortController();
    busy(controller, button);
    try {
      const doc = await (await call("POST", path, body, controller.signal)).json();
      showImages(grid, $(`${prefix}-meta`), doc, started);
    } catch (e) {
      grid.dataset.state = "error";
      $(`${prefix}-meta`).textContent = "";
      if (e.name !== "AbortError") showError(e);
    } finally {
      grid.classList.remove("waiting");
      idle(button);
    }
  }

  async function draw() {
    if (state.busy) return;
    clearError();
    const card = state.model;
    const body = {model: card.id, n: numberField("image-n"), seed: numberField("image-seed"),
                  response_format: "b64_json", ...conditionsOf(card, "image")};
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    await send("image", "draw", "/v1/images/generations", body);
  }

  async function edit() {
    if (state.busy) return;
    clearError();
    const card = state.model;
    const image = $("edit-image").files[0];
    if (!image) throw new PageError("choose the image to edit");
    const fields = {model: card.id, n: numberField("edit-n"), seed: numberField("edit-seed"),
                    strength: numberField("edit-strength"), response_format: "b64_json",
                    ...conditionsOf(card, "edit")};
    const form = new FormData();
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) form.append(k, String(v));
    form.append("image", image);
    const mask = $("edit-mask").files[0];
    if (mask) form.append("mask", mask);
    await send("edit", "edit-go", "/v1/images/edits", form);
  }

  // the fields a panel's condition and sampling settings take, ids prefixed by the panel's
  const conditionHtml = (prefix, legend) => `
        <label id="${prefix}-prompt-field" class="field wide">Prompt
          <input id="${prefix}-prompt" type="text" spellcheck="false" placeholder="a large disc">
        </label>
        <label id="${prefix}-class-field" class="field wide">Class
          <select id="${prefix}-class"></select>
        </label>
        <p id="${prefix}-note" class="note"></p>
        <fieldset id="${prefix}-sampling" class="controls" hidden>
          <legend>${legend}</legend>
          <label id="${prefix}-steps-field" class="field">steps
            <input id="${prefix}-steps" type="number" min="1" step="1"></label>
          <label id="${prefix}-guidance-field" class="field">guidance
            <input id="${prefix}-guidance" type="number" min="0" step="0.1"></label>
          <label id="${prefix}-sampler-field" class="field">sampler
            <select id="${prefix}-sampler"></select></label>
        </fieldset>`;

  window.tetragenPlayground.addPanel({
    id: "images", label: "Images", makes: "image", wants: ["prompt", "sample"],
    describe(card) {
      const caps = new Set(card.capabilities);
      if (caps.has("prompt")) return "a text prompt → images";
      return card.classes ? `a class name (${card.classes.length} classes) → images`
                          : "nothing (unconditional) → images";
    },
    fields: {seed: "image-seed", prompt: "image-prompt", n: "image-n", steps: "image-steps",
             guidance_scale: "image-guidance", sampler: "image-sampler"},
    html: conditionHtml("image", "Sampling") + `
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
    choose(card) { if (card.makes === "image") prepareConditions(card, "image"); },
  });

  window.tetragenPlayground.addPanel({
    id: "image-edit", label: "Edit", makes: "image", wants: ["edit"],
    describe() { return "an image (and a mask) → edited images"; },
    fields: {image: "edit-image", mask: "edit-mask", strength: "edit-strength", seed: "edit-seed",
             prompt: "edit-prompt", n: "edit-n", steps: "edit-steps", guidance_scale: "edit-guidance",
             sampler: "edit-sampler", size: "edit-image"},
    html: `
        <fieldset class="controls">
          <legend>Image</legend>
          <label class="field wide">image to edit
            <input id="edit-image" type="file" accept="image/*"></label>
          <label class="field wide" title="white (or transparent) where the image is drawn anew, black where it is
            kept; the model's size">mask <span class="hint">optional: white where drawn anew</span>
            <input id="edit-mask" type="file" accept="image/*"></label>
        </fieldset>` + conditionHtml("edit", "Sampling") + `
        <fieldset class="controls">
          <legend>Edit</legend>
          <label class="field">strength <span class="hint">0 kept … 1 new</span>
            <input id="edit-strength" type="number" min="0" max="1" step="0.05" placeholder="default"></label>
          <label class="field">n<input id="edit-n" type="number" min="1" step="1" value="4"></label>
          <label class="field">seed <span class="hint">blank: random</span>
            <input id="edit-seed" type="number" min="0" step="1" placeholder="random"></label>
        </fieldset>
        <div class="actions">
          <button id="edit-go" type="submit">Edit</button>
          <span id="edit-meta" class="meta"></span>
        </div>
        <div id="edit-grid" class="image-grid" data-state="idle"></div>`,
    build(form) { form.addEventListener("submit", onSubmit(edit)); },
    choose(card) { if (card.makes === "image") prepareConditions(card, "edit"); },
  });
})();

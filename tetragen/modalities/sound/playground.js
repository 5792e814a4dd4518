// The sound modality's playground panel: a prompt (or a class) → a clip from /v1/audio/speech, played in an
// <audio> element and drawn as a spectrogram computed here from the WAV itself. Loaded after the page's app.js; it
// adds its panel through the page's plug-in point (window.tetragenPlayground) and uses only what the page shares.
"use strict";

(() => {
  const {$, state, call, showError, clearError, numberField, busy, idle, onSubmit} = window.tetragenPlayground.kit;

  function prepare(card) {
    const caps = new Set(card.capabilities);
    const classes = !caps.has("prompt") || card.classes ? card.classes : null;
    $("sound-prompt").placeholder = classes && classes.length ? classes[0] : "a snare hit";
    $("sound-note").textContent = classes ? `It says one of its ${classes.length} classes: ${classes.join(", ")}.`
                                          : "It reads the prompt as text.";
    $("sound-audio").removeAttribute("src");
    $("sound-spectrogram").getContext("2d").clearRect(0, 0, 9999, 9999);
    $("sound-result").dataset.state = "idle";
    $("sound-meta").textContent = "";
  }

  // 16-bit mono PCM samples of a WAV file (the server writes the plain 44-byte header)
  function samplesOf(bytes) {
    const view = new DataView(bytes);
    let at = 12;
    while (at + 8 <= view.byteLength) {
      const id = String.fromCharCode(...new Uint8Array(bytes, at, 4));
      const size = view.getUint32(at + 4, true);
      if (id === "data") {
        const out = new Float32Array(size / 2);
        for (let i = 0; i < out.length; i++) out[i] = view.getInt16(at + 8 + 2 * i, true) / 32768;
        return out;
      }
      at += 8 + size;
    }
    return new Float32Array(0);
  }

  // magnitude spectrum of one frame (n a power of two), by an iterative radix-2 FFT
  function spectrum(frame) {
    const n = frame.length, re = Float64Array.from(frame), im = new Float64Array(n);
    for (let i = 1, j = 0; i < n; i++) {
      let bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) { [re[i], re[j]] = [re[j], re[i]]; }
    }
    for (let len = 2; len <= n; len <<= 1) {
      const a = -2 * Math.PI / len;
      for (let i = 0; i < n; i += len) {
        for (let k = 0; k < len / 2; k++) {
          const c = Math.cos(a * k), s = Math.sin(a * k);
          const xr = re[i + k + len / 2] * c - im[i + k + len / 2] * s;
          const xi = re[i + k + len / 2] * s + im[i + k + len / 2] * c;
          re[i + k + len / 2] = re[i + k] - xr; im[i + k + len / 2] = im[i + k] - xi;
          re[i + k] += xr; im[i + k] += xi;
        }
      }
    }
    const out = new Float64Array(n / 2);
    for (let k = 0; k < n / 2; k++) out[k] = Math.hypot(re[k], im[k]);
    return out;
  }

  function drawSpectrogram(canvas, samples) {
    const n = 512, hop = 128, frames = Math.max(1, Math.floor((samples.length - n) / hop) + 1);
    canvas.width = frames;
    canvas.height = n / 2;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(frames, n / 2);
    const window = Float64Array.from({length: n}, (_, i) => 0.5 - 0.5 * Math.cos(2 * Math.PI * i / n));
    for (let t = 0; t < frames; t++) {
      const frame = new Float64Array(n);
      for (let i = 0; i < n; i++) frame[i] = (samples[t * hop + i] || 0) * window[i];
      const mag = spectrum(frame);
      for (let k = 0; k < n / 2; k++) {
        const db = 20 * Math.log10(mag[k] + 1e-9);
        const v = Math.max(0, Math.min(255, Math.round((db + 80) / 90 * 255)));
        const at = 4 * ((n / 2 - 1 - k) * frames + t);
        img.data[at] = v; img.data[at + 1] = v; img.data[at + 2] = v; img.data[at + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }

  async function say() {
    if (state.busy) return;
    clearError();
    const card = state.model;
    const body = {model: card.id, input: $("sound-prompt").value || $("sound-prompt").placeholder, voice: "alloy",
                  response_format: "wav", seed: numberField("sound-seed")};
    if (body.seed === undefined) delete body.seed;
    const result = $("sound-result");
    result.dataset.state = "drawing";
    $("sound-meta").textContent = "making…";
    const started = performance.now();
    const controller = new AbortController();
    busy(controller, "say");
    try {
      const response = await call("POST", "/v1/audio/speech", body, controller.signal);
      const bytes = await response.arrayBuffer();
      let text = "";
      for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
      $("sound-audio").src = `data:audio/wav;base64,${btoa(text)}`;
      drawSpectrogram($("sound-spectrogram"), samplesOf(bytes));
      result.dataset.state = "done";
      const warning = response.headers.get("X-Tetragen-Warning");
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      $("sound-meta").textContent = `seed ${response.headers.get("X-Tetragen-Seed")} · ${seconds} s`
                                    + (warning ? ` · ${warning}` : "");
    } catch (e) {
      result.dataset.state = "error";
      $("sound-meta").textContent = "";
      if (e.name !== "AbortError") showError(e);
    } finally {
      idle("say");
    }
  }

  window.tetragenPlayground.addPanel({
    id: "sound", label: "Sound", makes: "sound", wants: ["prompt", "sample"],
    describe(card) {
      return card.classes ? `a word (${card.classes.length} classes) → a 1-s clip` : "a text prompt → a 1-s clip";
    },
    fields: {input: "sound-prompt", seed: "sound-seed"},
    html: `
        <label class="field wide">Prompt
          <input id="sound-prompt" type="text" spellcheck="false">
        </label>
        <p id="sound-note" class="note"></p>
        <fieldset class="controls">
          <legend>Sound</legend>
          <label class="field">seed <span class="hint">blank: random</span>
            <input id="sound-seed" type="number" min="0" step="1" placeholder="random"></label>
        </fieldset>
        <div class="actions">
          <button id="say" type="submit">Make</button>
          <span id="sound-meta" class="meta"></span>
        </div>
        <div id="sound-result" data-state="idle">
          <audio id="sound-audio" controls></audio>
          <canvas id="sound-spectrogram" class="spectrogram" width="122" height="256"></canvas>
        </div>`,
    build(form) { form.addEventListener("submit", onSubmit(say)); },
    choose(card) { if (card.makes === "sound") prepare(card); },
  });
})();

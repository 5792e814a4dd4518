// The music modality's playground panel: a prompt (a style and key) → a piece from /v1/music/generations, played
// from its rendered WAV in an <audio> element, drawn as a piano roll from its frames, and offered as a MIDI file.
// Loaded after the page's app.js; it adds its panel through the page's plug-in point (window.tetragenPlayground).
"use strict";

(() => {
  const {$, state, call, showError, clearError, numberField, busy, idle, onSubmit} = window.tetragenPlayground.kit;

  function prepare(card) {
    const styles = (card.styles || []);
    $("music-prompt").placeholder = styles.length ? styles[0] : "in c major";
    $("music-note").textContent = styles.length ? `Its styles: ${styles.join(", ")}; add a key ("in g minor") or ` +
                                                  "leave it to the model." : "Name a key, or leave it to the model.";
    $("music-audio").removeAttribute("src");
    $("music-roll").getContext("2d").clearRect(0, 0, 9999, 9999);
    $("music-result").dataset.state = "idle";
    $("music-meta").textContent = "";
    $("music-midi").removeAttribute("href");
  }

  // a piano roll of frames (lists of MIDI pitches): time to the right, pitch up, held notes joined
  function drawRoll(canvas, frames) {
    const notes = frames.flat();
    const low = notes.length ? Math.min(...notes) - 2 : 57, high = notes.length ? Math.max(...notes) + 2 : 72;
    const fx = 8, py = 4;
    canvas.width = Math.max(1, frames.length) * fx;
    canvas.height = (high - low + 1) * py;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#e1e1eb";
    for (let p = low; p <= high; p++) if (p % 12 === 0) ctx.fillRect(0, (high - p) * py + py / 2, canvas.width, 1);
    ctx.fillStyle = "#2846a0";
    frames.forEach((frame, k) => {
      for (const p of frame) {
        const held = k > 0 && frames[k - 1].includes(p);
        ctx.fillRect(k * fx + (held ? 0 : 1), (high - p) * py, fx - (held ? 0 : 1), py - 1);
      }
    });
  }

  async function compose() {
    if (state.busy) return;
    clearError();
    const card = state.model;
    const body = {model: card.id, prompt: $("music-prompt").value || $("music-prompt").placeholder, n: 1,
                  seed: numberField("music-seed"), max_frames: numberField("music-frames"),
                  temperature: numberField("music-temperature")};
    for (const k of ["seed", "max_frames", "temperature"]) if (body[k] === undefined) delete body[k];
    const result = $("music-result");
    result.dataset.state = "drawing";
    $("music-meta").textContent = "composing…";
    const started = performance.now();
    const controller = new AbortController();
    busy(controller, "compose");
    try {
      const response = await call("POST", "/v1/music/generations", body, controller.signal);
      const doc = await response.json();
      const piece = doc.data[0];
      if (piece.wav) $("music-audio").src = `data:audio/wav;base64,${piece.wav}`;
      else $("music-audio").removeAttribute("src");
      $("music-midi").href = `data:audio/midi;base64,${piece.midi}`;
      drawRoll($("music-roll"), piece.frames);
      result.dataset.state = "done";
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      $("music-meta").textContent = `“${piece.prompt}” · seed ${doc.seed} · ${piece.frames.length} frames · ` +
                                    `${seconds} s` + (doc.warnings.length ? ` · ${doc.warnings.join("; ")}` : "");
    } catch (e) {
      result.dataset.state = "error";
      $("music-meta").textContent = "";
      if (e.name !== "AbortError") showError(e);
    } finally {
      idle("compose");
    }
  }

  window.tetragenPlayground.addPanel({
    id: "music", label: "Music", makes: "music", wants: ["prompt"],
    describe(card) {
      return card.styles && card.styles.length ? `a style (${card.styles.join(", ")}) → a score`
                                               : "a key → a score";
    },
    fields: {prompt: "music-prompt", seed: "music-seed", max_frames: "music-frames",
             temperature: "music-temperature"},
    html: `
        <label class="field wide">Prompt
          <input id="music-prompt" type="text" spellcheck="false">
        </label>
        <p id="music-note" class="note"></p>
        <fieldset class="controls">
          <legend>Music</legend>
          <label class="field">seed <span class="hint">blank: random</span>
            <input id="music-seed" type="number" min="0" step="1" placeholder="random"></label>
          <label class="field">frames <span class="hint">quarter notes</span>
            <input id="music-frames" type="number" min="1" max="512" step="1" placeholder="64"></label>
          <label class="field">temperature
            <input id="music-temperature" type="number" min="0" max="5" step="0.1" placeholder="1.0"></label>
        </fieldset>
        <div class="actions">
          <button id="compose" type="submit">Compose</button>
          <span id="music-meta" class="meta"></span>
        </div>
        <div id="music-result" data-state="idle">
          <audio id="music-audio" controls></audio>
          <a id="music-midi" download="piece.mid">MIDI</a>
          <canvas id="music-roll" class="pianoroll" width="256" height="128"></canvas>
        </div>`,
    build(form) { form.addEventListener("submit", onSubmit(compose)); },
    choose(card) { if (card.makes === "music") prepare(card); },
  });
})();

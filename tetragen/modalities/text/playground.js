// The text modality's playground panels: text generation (completion or chat, streamed from /v1/completions and
// /v1/chat/completions), fill-mask and classify. Loaded after the page's app.js; it adds its panels through the
// page's plug-in point (window.tetragenPlayground) and uses only what the page shares there.
"use strict";

(() => {
  const {$, state, call, stream, showError, clearError, numberField, busy, idle, onSubmit} =
    window.tetragenPlayground.kit;
  const conversation = {model: null, messages: []};  // the chat so far: {role, content}, of the chosen model

  function stops() {
    const lines = $("stop").value.split("\n").filter((l) => l !== "");
    const out = lines.map((l) => l.replace(/\\n/g, "\n").replace(/\\t/g, "\t"));
    return out.length ? out : undefined;
  }

  function sampling() {
    const body = {
      model: state.model.id,
      max_tokens: numberField("max-tokens"),
      temperature: Number($("temperature").value),
      top_p: Number($("top-p").value),
      top_k: numberField("top-k"),
      seed: numberField("seed"),
      stop: stops(),
      stream: true,
      stream_options: {include_usage: true},
    };
    for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
    return body;
  }

  function chatMode() {
    return $("mode-chat").checked;
  }

  function setMode() {
    const chat = chatMode();
    $("chat-area").hidden = !chat;
    $("chat-clear").hidden = !chat;
    $("output").hidden = chat;
    $("prompt-label").textContent = chat ? "Message" : "Prompt";
    $("generate").textContent = chat ? "Send" : "Generate";
  }

  function renderChat(streaming) {
    const log = $("chat-log");
    log.replaceChildren();
    const messages = streaming ? [...conversation.messages, streaming] : conversation.messages;
    for (const m of messages) {
      const el = document.createElement("div");
      el.className = `message ${m.role}`;
      const who = document.createElement("div");
      who.className = "who";
      who.textContent = m.role;
      const text = document.createElement("div");
      text.className = "text";
      text.textContent = m.content;
      el.append(who, text);
      if (m === streaming) el.classList.add("streaming");
      log.append(el);
    }
    log.scrollTop = log.scrollHeight;
    return log.lastElementChild;
  }

  function finishLine(finish, tokens, seconds) {
    const parts = [];
    if (finish) parts.push(`finish_reason: ${finish}`);
    if (tokens !== undefined) parts.push(`${tokens} token${tokens === 1 ? "" : "s"}`);
    parts.push(`${seconds.toFixed(2)} s`);
    if (tokens && seconds > 0) parts.push(`${(tokens / seconds).toFixed(0)} tokens/s`);
    return parts.join(" · ");
  }

  async function generate() {
    if (state.busy) return;
    clearError();
    const chat = chatMode();
    const body = sampling();
    const prompt = $("prompt").value;
    const output = $("output");
    let text = "", finish = null, tokens, chunks = 0;
    let bubble = null;
    const reply = {role: "assistant", content: ""};
    if (chat) {
      const system = $("system").value.trim();
      body.messages = [...(system ? [{role: "system", content: system}] : []), ...conversation.messages,
                       {role: "user", content: prompt}];
      conversation.messages.push({role: "user", content: prompt});
      bubble = renderChat(reply);
      $("prompt").value = "";
    } else {
      body.prompt = prompt;
      $("output-prompt").textContent = prompt;
      $("output-text").textContent = "";
    }
    output.dataset.state = "streaming";
    output.dataset.chunks = "0";
    $("text-meta").textContent = "";
    const started = performance.now();
    const controller = new AbortController();
    busy(controller, "generate", "stop-button");
    try {
      await stream(chat ? "/v1/chat/completions" : "/v1/completions", body, (doc) => {
        if (doc.usage) tokens = doc.usage.completion_tokens;
        for (const choice of doc.choices || []) {
          const piece = chat ? (choice.delta && choice.delta.content) || "" : choice.text || "";
          if (piece) {
            text += piece;
            chunks += 1;
            output.dataset.chunks = String(chunks);
            if (chat) {
              reply.content = text;
              bubble.querySelector(".text").textContent = text;
            } else {
              $("output-text").textContent = text;
            }
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }, controller.signal);
      output.dataset.state = "done";
      output.dataset.finish = finish || "";
      if (chat) {
        conversation.messages.push(reply);
        renderChat();
      }
      $("text-meta").textContent = finishLine(finish, tokens, (performance.now() - started) / 1000);
    } catch (e) {
      if (chat) {
        if (text) conversation.messages.push(reply);
        renderChat();
      }
      if (e.name === "AbortError") {
        output.dataset.state = "stopped";
        $("text-meta").textContent = `stopped · ${((performance.now() - started) / 1000).toFixed(2)} s`;
      } else {
        output.dataset.state = "error";
        showError(e);
      }
    } finally {
      idle("generate", "stop-button");
    }
  }


  function bar(label, score) {
    const row = document.createElement("div");
    row.className = "bar-row";
    const name = document.createElement("span");
    name.className = "bar-label";
    name.textContent = label;
    const track = document.createElement("span");
    track.className = "bar-track";
    const fill = document.createElement("span");
    fill.className = "bar-fill";
    fill.style.width = `${Math.max(0, Math.min(1, score)) * 100}%`;
    track.append(fill);
    const value = document.createElement("span");
    value.className = "bar-value";
    value.textContent = score.toFixed(3);
    row.append(name, track, value);
    return row;
  }

  function visible(token) {
    return token.replace(/ /g, "␣").replace(/\n/g, "↵") || "∅";
  }

  async function fillMask() {
    if (state.busy) return;
    clearError();
    const body = {model: state.model.id, text: $("mask-text").value, top_k: numberField("mask-top-k")};
    if (body.top_k === undefined) delete body.top_k;
    const out = $("mask-results");
    out.dataset.state = "working";
    const controller = new AbortController();
    busy(controller, "fill");
    try {
      const doc = await (await call("POST", "/v1/fill-mask", body, controller.signal)).json();
      const masks = doc.data[0].masks;
      const groups = masks.map((cands, i) => {
        const group = document.createElement("div");
        group.className = "result-group";
        const h = document.createElement("h3");
        h.textContent = masks.length > 1 ? `[MASK] ${i + 1}` : "[MASK]";
        group.append(h, ...cands.map((c) => bar(visible(c.token), c.score)));
        return group;
      });
      out.replaceChildren(...groups);
      out.dataset.state = "done";
    } catch (e) {
      out.dataset.state = "error";
      if (e.name !== "AbortError") showError(e);
    } finally {
      idle("fill");
    }
  }

  async function classify() {
    if (state.busy) return;
    clearError();
    const body = {model: state.model.id, text: $("classify-text").value};
    const out = $("classify-results");
    out.dataset.state = "working";
    const controller = new AbortController();
    busy(controller, "classify");
    try {
      const doc = await (await call("POST", "/v1/classify", body, controller.signal)).json();
      const item = doc.data[0];
      const scores = Object.entries(item.scores).sort((a, b) => b[1] - a[1]);
      const group = document.createElement("div");
      group.className = "result-group";
      const h = document.createElement("h3");
      h.textContent = `label: ${item.label}`;
      group.append(h, ...scores.map(([label, score]) => bar(label, score)));
      if (item.warnings) {
        const note = document.createElement("p");
        note.className = "note";
        note.textContent = item.warnings.join("; ");
        group.append(note);
      }
      out.replaceChildren(group);
      out.dataset.state = "done";
    } catch (e) {
      out.dataset.state = "error";
      if (e.name !== "AbortError") showError(e);
    } finally {
      idle("classify");
    }
  }

  const addPanel = window.tetragenPlayground.addPanel;
  addPanel({
    id: "text", label: "Text", makes: "text", wants: ["generate"],
    describe: () => "a text prompt → text",
    fields: {max_tokens: "max-tokens", max_completion_tokens: "max-tokens", temperature: "temperature",
             top_p: "top-p", top_k: "top-k", seed: "seed", stop: "stop"},
    html: `
        <div class="mode" role="radiogroup" aria-label="mode">
          <label><input type="radio" name="mode" id="mode-completion" value="completion" checked> Completion</label>
          <label><input type="radio" name="mode" id="mode-chat" value="chat"> Chat</label>
        </div>
        <div id="chat-area" class="chat-area" hidden>
          <label class="field wide">System message <span class="hint">optional</span>
            <input id="system" type="text" placeholder="e.g. You are a terse narrator.">
          </label>
          <div id="chat-log" class="chat-log" aria-live="polite"></div>
        </div>
        <label class="field wide"><span id="prompt-label">Prompt</span>
          <textarea id="prompt" rows="4" spellcheck="false" placeholder="ROMEO:"></textarea>
        </label>
        <fieldset class="controls">
          <legend>Sampling</legend>
          <label class="field">max_tokens<input id="max-tokens" type="number" min="0" step="1" value="64"></label>
          <label class="field">temperature <output id="temperature-value" for="temperature">0.8</output>
            <input id="temperature" type="range" min="0" max="2" step="0.05" value="0.8"></label>
          <label class="field">top_p <output id="top-p-value" for="top-p">1</output>
            <input id="top-p" type="range" min="0.05" max="1" step="0.05" value="1"></label>
          <label class="field">top_k <span class="hint">0: off</span>
            <input id="top-k" type="number" min="0" step="1" value="0"></label>
          <label class="field">seed <span class="hint">blank: random</span>
            <input id="seed" type="number" min="0" step="1" placeholder="random"></label>
          <label class="field span-2">stop <span class="hint">one per line, \\n for a newline</span>
            <textarea id="stop" rows="1" spellcheck="false"></textarea></label>
        </fieldset>
        <div class="actions">
          <button id="generate" type="submit">Generate</button>
          <button id="stop-button" type="button" class="secondary" disabled>Stop</button>
          <button id="chat-clear" type="button" class="ghost" hidden>Clear conversation</button>
          <span id="text-meta" class="meta"></span>
        </div>
        <pre id="output" class="output" data-state="idle"
             aria-live="polite"><span id="output-prompt" class="echo"></span><span id="output-text"></span></pre>`,
    build(form) {
      form.addEventListener("submit", onSubmit(generate));
      $("stop-button").addEventListener("click", () => state.busy && state.busy.abort());
      $("chat-clear").addEventListener("click", () => { conversation.messages = []; renderChat(); });
      for (const radio of form.querySelectorAll("input[name=mode]")) radio.addEventListener("change", setMode);
      for (const id of ["temperature", "top-p"]) {
        $(id).addEventListener("input", () => { $(`${id}-value`).textContent = $(id).value; });
      }
      $("prompt").addEventListener("keydown", (e) => {
        if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
      });
      setMode();
    },
    choose(card) {
      if (conversation.model !== card.id) conversation.messages = [];  // a new model starts a new conversation
      conversation.model = card.id;
      renderChat();
    },
  });
  addPanel({
    id: "fill-mask", label: "Fill mask", makes: "text", wants: ["fill_mask"],
    describe: () => "text with [MASK] → candidates",
    fields: {top_k: "mask-top-k"},
    html: `
        <label class="field wide">Text with one or more <code>[MASK]</code>
          <input id="mask-text" type="text" spellcheck="false" value="the [MASK] and">
        </label>
        <fieldset class="controls">
          <legend>Candidates</legend>
          <label class="field">top_k<input id="mask-top-k" type="number" min="1" step="1" value="5"></label>
        </fieldset>
        <div class="actions"><button id="fill" type="submit">Fill in</button></div>
        <div id="mask-results" class="results" data-state="idle"></div>`,
    build(form) { form.addEventListener("submit", onSubmit(fillMask)); },
  });
  addPanel({
    id: "classify", label: "Classify", makes: "text", wants: ["classify"],
    describe: () => "text → label scores",
    html: `
        <label class="field wide">Text
          <textarea id="classify-text" rows="3" spellcheck="false"></textarea>
        </label>
        <div class="actions"><button id="classify" type="submit">Classify</button></div>
        <div id="classify-results" class="results" data-state="idle"></div>`,
    build(form) { form.addEventListener("submit", onSubmit(classify)); },
  });
})();

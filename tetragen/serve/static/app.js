// The playground of `tetragen serve`: lists the served models (GET /v1/models) and talks to them through the
// server's HTTP API, as any client would. Text is streamed: fetch reads the server-sent events of
// /v1/completions or /v1/chat/completions (`stream: true`) as they arrive. Errors are the server's own, in OpenAI's
// shape, shown as they come. The API key, when the server asks for one, lives in this page's memory only.
"use strict";

const state = {
  key: "",            // sent as `Authorization: Bearer KEY` once the user gives it
  needsKey: false,
  models: [],
  model: null,        // the chosen model's card
  panel: null,
  busy: null,         // the AbortController of the request in flight
  chat: [],           // the conversation so far: {role, content}
};

const $ = (id) => document.getElementById(id);

// what each panel needs: the kind of content a model makes (its card's `makes`) and one of its capabilities; and
// how the model list describes it. A model of a kind no panel shows is listed with its routes.
const PANELS = [
  {id: "text", label: "Text", makes: "text", wants: ["generate"]},
  {id: "images", label: "Images", makes: "image", wants: ["prompt", "sample"]},
  {id: "fill-mask", label: "Fill mask", makes: "text", wants: ["fill_mask"]},
  {id: "classify", label: "Classify", makes: "text", wants: ["classify"]},
];

// The plug-in point of a kind of content: its own script (Modality.playground, loaded after this one) adds panels
// with addPanel({id, label, makes, wants, describe(card) -> text for the model list, build(form, kit)}). build
// fills the panel's empty <form>; kit holds what the page's own panels use: call(method, path, body) through the
// API with the key, model() the chosen model's card, showError, clearError, and onSubmit(action) for its form.
window.tetragenPlayground = {
  addPanel(panel) { PANELS.push(panel); },
};

function accepts(card) {
  const caps = new Set(card.capabilities);
  const out = PANELS.filter((p) => p.describe && p.makes === card.makes && p.wants.some((c) => caps.has(c)))
    .map((p) => p.describe(card));
  if (caps.has("generate")) out.push("a text prompt → text");
  if (caps.has("prompt")) out.push("a text prompt → images");
  else if (caps.has("sample")) {
    out.push(card.classes ? `a class name (${card.classes.length} classes) → images`
                          : "nothing (unconditional) → images");
  }
  if (caps.has("fill_mask")) out.push("text with [MASK] → candidates");
  if (caps.has("classify")) out.push("text → label scores");
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// talking to the server

class ApiError extends Error {
  constructor(status, error) {
    super(error.message);
    this.status = status;   // the HTTP status; 200 for an error sent inside a stream
    this.error = error;     // {message, type, param, code}
  }
}

function headers(withBody) {
  const h = {};
  if (withBody) h["Content-Type"] = "application/json";
  if (state.key) h["Authorization"] = `Bearer ${state.key}`;
  return h;
}

async function errorOf(res) {
  const text = await res.text();
  try {
    const doc = JSON.parse(text);
    if (doc && doc.error && typeof doc.error.message === "string") return new ApiError(res.status, doc.error);
  } catch (_) { /* not JSON: shown as text below */ }
  const message = text.trim().slice(0, 300) || res.statusText || "the request failed";
  return new ApiError(res.status, {message, type: null, param: null, code: null});
}

async function call(method, path, body, signal) {
  let res;
  try {
    res = await fetch(path, {method, headers: headers(body !== undefined), signal,
                             body: body === undefined ? undefined : JSON.stringify(body)});
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, {message: "the server cannot be reached; is `tetragen serve` still running?",
                           type: "network_error", param: null, code: null});
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

// POST `body` with stream: true and hand each server-sent event's JSON to `onEvent`; resolves when the server sends
// [DONE], and fails if the stream ends without it (the answer would be incomplete).
async function stream(path, body, onEvent, signal) {
  const res = await call("POST", path, body, signal);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split("\n").filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).replace(/^ /, "")).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      const doc = JSON.parse(data);
      if (doc.error) throw new ApiError(200, doc.error);
      onEvent(doc);
    }
  }
  throw new ApiError(200, {message: "the stream ended before the server said [DONE]; the answer is incomplete",
                           type: "stream_error", param: null, code: null});
}

// ---------------------------------------------------------------------------------------------------------------
// errors

const FIELD_INPUTS = {max_tokens: "max-tokens", max_completion_tokens: "max-tokens", temperature: "temperature",
                      top_p: "top-p", top_k: "top-k", seed: "seed", stop: "stop", n: "image-n"};

function showError(e) {
  if (e instanceof PageError) {
    e = new ApiError(0, {message: e.message, type: "page_error", param: null, code: null});
  } else if (!(e instanceof ApiError)) {
    e = new ApiError(0, {message: `the page failed: ${e.message || e}`, type: "page_error", param: null, code: null});
  }
  const err = e.error;
  $("error-status").textContent = e.status ? (e.status === 200 ? "stream" : String(e.status)) : "error";
  $("error-message").textContent = err.message;
  $("error-detail").textContent = [err.type, err.code, err.param && `param: ${err.param}`].filter(Boolean).join(" · ");
  $("error").hidden = false;
  document.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
  const input = err.param && state.panel && (state.panel === "images" && err.param === "seed" ? "image-seed"
    : state.panel === "images" && err.param === "prompt" ? "image-prompt"
    : state.panel === "fill-mask" && err.param === "top_k" ? "mask-top-k" : FIELD_INPUTS[err.param]);
  if (input && $(input)) $(input).classList.add("invalid");
}

function clearError() {
  $("error").hidden = true;
  document.querySelectorAll(".invalid").forEach((el) => el.classList.remove("invalid"));
}

// ---------------------------------------------------------------------------------------------------------------
// connecting and the model list

function setStatus(kind, text) {
  const el = $("server-status");
  el.dataset.state = kind;
  el.textContent = text;
}

async function connect() {
  setStatus("connecting", "connecting…");
  let health;
  try {
    health = await (await fetch("/health")).json();
  } catch (_) {
    setStatus("down", "server unreachable; retrying");
    setTimeout(connect, 2000);
    return;
  }
  if (health.status === "loading") {
    setStatus("connecting", "loading models…");
    setTimeout(connect, 1000);
    return;
  }
  if (health.status !== "ok") {
    setStatus("down", "models failed to load");
    if (health.error) showError(new ApiError(503, health.error));
    return;
  }
  try {
    const res = await call("GET", "/v1/models");
    state.models = (await res.json()).data;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      state.needsKey = true;
      $("key-form").hidden = false;
      setStatus("locked", "this server needs an API key");
      if (state.key) showError(e);
      else $("api-key").focus();
      return;
    }
    setStatus("down", "could not list the models");
    showError(e);
    return;
  }
  clearError();
  const n = state.models.length;
  setStatus("ok", `connected · ${n} model${n === 1 ? "" : "s"}`);
  renderModels();
}

function chip(text, kind) {
  const el = document.createElement("span");
  el.className = `chip ${kind || ""}`;
  el.textContent = text;
  return el;
}

function renderModels() {
  const list = $("model-list");
  list.replaceChildren();
  for (const card of state.models) {
    const li = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "model";
    button.dataset.model = card.id;
    const top = document.createElement("div");
    top.className = "model-top";
    const name = document.createElement("span");
    name.className = "model-id";
    name.textContent = card.id;
    top.append(name, chip(card.family, "family"));
    const what = document.createElement("div");
    what.className = "model-accepts";
    const lines = accepts(card);
    what.textContent = lines.length ? lines.join("; ") : "nothing served over HTTP";
    button.append(top, what);
    button.addEventListener("click", () => choose(card.id));
    li.append(button);
    list.append(li);
  }
  if (state.model) choose(state.model.id);
}

function choose(id) {
  const card = state.models.find((m) => m.id === id);
  if (!card) return;
  if (state.busy) state.busy.abort();
  if (!state.model || state.model.id !== id) state.chat = [];
  state.model = card;
  clearError();
  document.querySelectorAll(".model").forEach((b) => b.classList.toggle("selected", b.dataset.model === id));
  $("empty").hidden = true;
  $("model-head").hidden = false;
  $("model-name").textContent = card.id;
  const about = [`${card.family}`, ...card.capabilities];
  if (card.context) about.push(`context ${card.context} tokens`);
  $("model-about").replaceChildren(...about.map((t, i) => chip(t, i === 0 ? "family" : "")));
  const caps = new Set(card.capabilities);
  const panels = PANELS.filter((p) => p.makes === card.makes && p.wants.some((c) => caps.has(c)));
  const tabs = $("tabs");
  tabs.replaceChildren();
  for (const p of panels) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "tab";
    b.id = `tab-${p.id}`;
    b.setAttribute("role", "tab");
    b.textContent = p.label;
    b.addEventListener("click", () => showPanel(p.id));
    tabs.append(b);
  }
  tabs.hidden = panels.length < 2;
  $("no-panel").hidden = panels.length > 0;
  prepareImages(card);
  renderChat();
  showPanel(panels.length ? panels[0].id : null);
}

function showPanel(id) {
  state.panel = id;
  for (const p of PANELS) $(`panel-${p.id}`).hidden = p.id !== id;
  document.querySelectorAll(".tab").forEach((t) => t.setAttribute("aria-selected", String(t.id === `tab-${id}`)));
}

// ---------------------------------------------------------------------------------------------------------------
// text

class PageError extends Error {}

function numberField(id) {
  const raw = $(id).value.trim();
  if (raw === "") return undefined;
  const value = Number(raw);
  // the server judges every value; a whole number past 2**53 would reach it changed, so the page says so instead
  if (Number.isInteger(value) && !Number.isSafeInteger(value)) {
    throw new PageError(`${raw} is larger than this page can send exactly (at most ${Number.MAX_SAFE_INTEGER})`);
  }
  return value;
}

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
  const messages = streaming ? [...state.chat, streaming] : state.chat;
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
    body.messages = [...(system ? [{role: "system", content: system}] : []), ...state.chat,
                     {role: "user", content: prompt}];
    state.chat.push({role: "user", content: prompt});
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
      state.chat.push(reply);
      renderChat();
    }
    $("text-meta").textContent = finishLine(finish, tokens, (performance.now() - started) / 1000);
  } catch (e) {
    if (chat) {
      if (text) state.chat.push(reply);
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

function busy(controller, ...buttons) {
  state.busy = controller;
  const [go, stop] = buttons;
  $(go).disabled = true;
  if (stop) $(stop).disabled = false;
}

function idle(...buttons) {
  state.busy = null;
  const [go, stop] = buttons;
  $(go).disabled = false;
  if (stop) $(stop).disabled = true;
}

// ---------------------------------------------------------------------------------------------------------------
// images

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

// ---------------------------------------------------------------------------------------------------------------
// fill-mask and classify

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

// ---------------------------------------------------------------------------------------------------------------

// a form's submit runs `action` here, in the page; whatever it fails with is shown
function onSubmit(action) {
  return (event) => {
    event.preventDefault();
    action().catch(showError);
  };
}

// the panels kinds of content added: each gets its form, built by its own script
function buildPanels() {
  const kit = {call, model: () => state.model, showError, clearError, onSubmit};
  for (const p of PANELS.filter((q) => q.build)) {
    const form = document.createElement("form");
    form.id = `panel-${p.id}`;
    form.className = "panel";
    form.dataset.panel = p.id;
    form.noValidate = true;
    form.hidden = true;
    $("no-panel").before(form);
    p.build(form, kit);
  }
}

function init() {
  buildPanels();
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    state.key = $("api-key").value.trim();
    connect();
  });
  $("error-close").addEventListener("click", clearError);
  $("panel-text").addEventListener("submit", onSubmit(generate));
  $("panel-images").addEventListener("submit", onSubmit(draw));
  $("panel-fill-mask").addEventListener("submit", onSubmit(fillMask));
  $("panel-classify").addEventListener("submit", onSubmit(classify));
  $("stop-button").addEventListener("click", () => state.busy && state.busy.abort());
  $("chat-clear").addEventListener("click", () => { state.chat = []; renderChat(); });
  for (const radio of document.querySelectorAll("input[name=mode]")) radio.addEventListener("change", setMode);
  for (const id of ["temperature", "top-p"]) {
    $(id).addEventListener("input", () => { $(`${id}-value`).textContent = $(id).value; });
  }
  $("prompt").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("panel-text").requestSubmit();
  });
  setMode();
  connect();
}

document.addEventListener("DOMContentLoaded", init);

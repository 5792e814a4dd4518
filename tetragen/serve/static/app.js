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
};

const $ = (id) => document.getElementById(id);

// The panels, one list for every kind of content. Each kind's own script (Modality.playground: text, images, ...,
// loaded after this one) adds its panels with tetragenPlayground.addPanel({id, label, makes, wants, html,
// describe(card), build(form, kit), choose(card), fields}): a panel shows for a model that makes `makes` and has one
// of the capabilities in `wants`; `html` fills its <form id="panel-ID">, then `build` wires it; `describe` says in
// the model list what the model takes; `choose` runs when a model is chosen; `fields` maps a request field to the
// input an error about it marks. kit: what the page's panels share (below).
const PANELS = [];

function accepts(card) {
  const caps = new Set(card.capabilities);
  return PANELS.filter((p) => p.describe && p.makes === card.makes && p.wants.some((c) => caps.has(c)))
    .map((p) => p.describe(card)).filter(Boolean);
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

// `body`: an object sent as JSON, or a FormData sent as a multipart form (files: /v1/images/edits)
async function call(method, path, body, signal) {
  let res;
  const form = body instanceof FormData;
  try {
    res = await fetch(path, {method, headers: headers(body !== undefined && !form), signal,
                             body: body === undefined || form ? body : JSON.stringify(body)});
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
  const panel = PANELS.find((p) => p.id === state.panel);
  const input = err.param && panel && (panel.fields || {})[err.param];
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
  for (const p of PANELS) if (p.choose) p.choose(card);
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

// a form's submit runs `action` here, in the page; whatever it fails with is shown
function onSubmit(action) {
  return (event) => {
    event.preventDefault();
    action().catch(showError);
  };
}

// each panel gets its form, filled and wired by its own script
function buildPanels() {
  for (const p of PANELS) {
    const form = document.createElement("form");
    form.id = `panel-${p.id}`;
    form.className = "panel";
    form.dataset.panel = p.id;
    form.noValidate = true;
    form.hidden = true;
    form.innerHTML = p.html || "";
    $("no-panel").before(form);
    if (p.build) p.build(form, kit);
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
  connect();
}

// What the panels share, the plug-in point of the page: the scripts of the kinds of content, loaded after this one,
// add their panels here and use the same API calls, errors and state as the page.
const kit = {$, state, call, stream, showError, clearError, numberField, PageError, busy, idle, onSubmit, chip,
             model: () => state.model};
window.tetragenPlayground = {kit, addPanel(panel) { PANELS.push(panel); }};

document.addEventListener("DOMContentLoaded", init);

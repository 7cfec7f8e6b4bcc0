"""The web page served at `/`: ask one model, mix adapters with weight sliders, or compare models side by side.

Plain HTML + JavaScript, no external assets (it works offline and behind any firewall). Answers stream in as
they are generated (`stream: true`, read with fetch + ReadableStream from the server-sent events); a server that
answers with JSON instead is read as JSON. For `auto` the page shows the router's choice and scores. A box turns on
copy-aware decoding (the `copy_bias` and `requested_names` extensions, as `copying.copy_aware_kwargs` gives them).
A stream that ends before `data: [DONE]` is shown as interrupted (the partial answer stays), and an error response,
JSON or not (a proxy's HTML 502), is shown as `error STATUS: message`. The page is English only.
"""

import json

from ..copying import copy_aware_kwargs

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>LoRA Adapter Lab</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; min-height: 5rem; font: inherit; box-sizing: border-box; }
  select, button { font: inherit; padding: .3rem .6rem; }
  section { border-top: 1px solid #ddd; margin-top: 1.2rem; padding-top: .4rem; }
  h2 { font-size: 1.1rem; margin: .4rem 0; }
  .row { display: flex; gap: .6rem; align-items: center; margin: .6rem 0; flex-wrap: wrap; }
  .answer { white-space: pre-wrap; background: #f4f4f4; padding: .8rem; border-radius: .4rem; min-height: 2rem; }
  .meta { color: #555; font-size: .9rem; }
  .error { color: #b00020; }
  .slider { display: grid; grid-template-columns: 8rem 1fr 3rem; gap: .6rem; align-items: center; }
  #columns { display: grid; grid-template-columns: repeat(auto-fit, minmax(14rem, 1fr)); gap: .8rem; }
  .column h3 { font-size: 1rem; margin: .2rem 0; }
</style>
</head>
<body>
<h1>LoRA Adapter Lab</h1>
<p class="meta">One base model, several LoRA adapters, one OpenAI-compatible API
(<code>POST /v1/chat/completions</code>). Ask one model (<b>auto</b> lets the router choose), mix the adapters
with weights, or compare models side by side. Answers stream in as they are generated.</p>
<label for="prompt">Prompt</label>
<textarea id="prompt" placeholder="Extract the order as JSON: ..."></textarea>

<section id="single">
  <h2>Ask one model</h2>
  <div class="row">
    <label for="model">Model</label>
    <select id="model"><option value="">loading...</option></select>
    <button id="send" type="button" disabled>Send</button>
    <label class="meta"><input type="checkbox" id="copy"> copy names exactly
      (<code>copy_bias</code>, <code>requested_names</code>)</label>
    <span id="status" class="meta">loading models...</span>
  </div>
  <div id="answer" class="answer" aria-live="polite"></div>
  <p class="meta">Answered by: <b id="adapter">-</b> <span id="detail"></span></p>
  <p class="meta" id="route"></p>
</section>

<section id="mixer">
  <h2>Mix adapters</h2>
  <p class="meta">Each slider is one adapter's weight (0 leaves it out, 1 = as trained, 2 = twice as strong).
  Sent as <code>model="mix"</code> with <code>adapter_weights</code>. An adapter that trained its own copy of a
  module (tools: lm_head) cannot be mixed and has no slider.</p>
  <div id="sliders"></div>
  <div class="row">
    <button id="send-mix" type="button" disabled>Send mix</button>
    <span id="mix-status" class="meta"></span>
  </div>
  <div id="mix-answer" class="answer" aria-live="polite"></div>
  <p class="meta">Answered by: <b id="mix-adapter">-</b></p>
</section>

<section id="compare">
  <h2>Compare</h2>
  <p class="meta">One prompt to several models at once; each column streams its own answer.</p>
  <div id="compare-models" class="row"></div>
  <div class="row">
    <button id="compare-send" type="button" disabled>Compare</button>
    <span id="compare-status" class="meta"></span>
  </div>
  <div id="columns"></div>
</section>

<script>
const $ = (id) => document.getElementById(id);
let MODELS = [];

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) node.append(child);
  return node;
}

function label(m) {
  if (m.kind === "router") return m.id + " (router picks)";
  if (m.kind === "mix") return m.id + " (mix)";
  return m.id;
}

async function loadModels() {
  try {
    const response = await fetch("/v1/models");
    const {json: body, text} = await readBody(response);
    if (!response.ok || !body || !Array.isArray(body.data)) throw new Error(failure(response, body, text));
    MODELS = body.data;
    const select = $("model");
    select.innerHTML = "";
    for (const m of MODELS) select.append(el("option", {value: m.id, textContent: label(m)}));
    for (const m of MODELS.filter((m) => m.kind === "adapter" && m.mixable !== false)) {  // not the tools adapter
      const value = el("span", {className: "meta", textContent: "0"});
      const range = el("input", {type: "range", min: "0", max: "2", step: "0.1", value: "0", id: "w-" + m.id});
      range.dataset.adapter = m.id;
      range.addEventListener("input", () => { value.textContent = range.value; });
      $("sliders").append(el("div", {className: "slider"}, el("label", {htmlFor: range.id, textContent: m.id}),
                             range, value));
    }
    for (const m of MODELS) {
      const box = el("input", {type: "checkbox", value: m.id, id: "c-" + m.id});
      $("compare-models").append(el("label", {}, box, " " + m.id));
    }
    for (const id of ["send", "send-mix", "compare-send"]) $(id).disabled = false;
    $("status").textContent = "ready";
    document.body.dataset.ready = "1";
  } catch (err) {
    $("status").textContent = "cannot list models: " + (err.message || err);
    $("status").className = "meta error";
  }
}

// The body of a response as {json, text}: json is null when the body is not JSON (e.g. a proxy's HTML 502 page).
async function readBody(response) {
  const text = await response.text();
  try {
    return {json: JSON.parse(text), text};
  } catch (err) {
    return {json: null, text};
  }
}

// What went wrong with a response that is not the expected answer, as one line.
function failure(response, json, text) {
  if (json && json.error && json.error.message) return "error " + response.status + ": " + json.error.message;
  const words = (text || "").replace(/<[^>]*>/g, " ").replace(/\\s+/g, " ").trim().slice(0, 200);
  if (response.ok) return "unexpected answer (not this course's API?): " + (words || "empty body");
  return "error " + response.status + (words ? ": " + words : (response.statusText ? " " + response.statusText : ""));
}

function routeText(route) {
  if (!route) return "";
  const scores = Object.entries(route.scores || {}).map(([k, v]) => k + " " + Number(v).toFixed(2)).join(", ");
  return "Router: " + route.label + " -> " + route.adapter + (scores ? " (scores: " + scores + ")" : "")
         + (route.reason ? "; " + route.reason : "");
}

// Send one chat request and fill `view` ({answer, adapter, route, status, detail} elements) as the answer arrives.
async function ask(body, view) {
  view.answer.textContent = "";
  view.adapter.textContent = "-";
  if (view.route) view.route.textContent = "";
  if (view.detail) view.detail.textContent = "";
  view.status.textContent = "thinking...";
  view.status.className = "meta";
  view.answer.dataset.mode = "";
  view.answer.dataset.chunks = "0";
  const started = performance.now();
  view.answer.dataset.started = String(started);
  try {
    let response = await post({...body, stream: true});
    const type = response.headers.get("content-type") || "";
    if (!type.includes("text/event-stream")) {
      let {json, text} = await readBody(response);
      if (!response.ok && json && json.error && json.error.param === "stream") {  // a server without streaming
        response = await post(body);
        ({json, text} = await readBody(response));
      }
      if (!response.ok || !json || !json.choices) throw new Error(failure(response, json, text));
      view.answer.dataset.mode = "json";
      view.answer.textContent = json.choices[0].message.content || "";
      show(view, json.adapter, json.route);
      if (view.detail && json.timing) {
        view.detail.textContent = json.timing.latency_ms + " ms, batch of " + json.timing.batch_size;
      }
    } else {
      view.answer.dataset.mode = "stream";
      await readStream(response, view);
      if (view.detail) view.detail.textContent = Math.round(performance.now() - started) + " ms, streamed";
    }
    view.status.textContent = "done";
  } catch (err) {
    view.status.textContent = String(err.message || err);
    view.status.className = "meta error";
  } finally {
    view.answer.dataset.finished = String(performance.now());
  }
}

function post(body) {
  return fetch("/v1/chat/completions", {method: "POST", headers: {"Content-Type": "application/json"},
                                        body: JSON.stringify(body)});
}

function show(view, adapter, route) {
  if (adapter) view.adapter.textContent = adapter;
  if (route && view.route) view.route.textContent = routeText(route);
}

// Read the server-sent events into `view`; a stream that ends before `data: [DONE]` was cut off: an error.
async function readStream(response, view) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read().catch((err) => {
      throw new Error("interrupted: the connection broke mid-answer (" + (err.message || err) + ")");
    });
    if (done) throw new Error("interrupted: the answer was cut off (the stream ended before [DONE]; did the server "
                              + "stop?)");
    buffer += decoder.decode(value, {stream: true});
    let cut;
    while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        show(view, chunk.adapter, chunk.route);
        for (const choice of chunk.choices || []) {
          if (choice.index === 0 && choice.delta && choice.delta.content) {
            view.answer.textContent += choice.delta.content;
            view.answer.dataset.chunks = String(Number(view.answer.dataset.chunks) + 1);
          }
        }
      }
    }
  }
}

const COPY_AWARE = __COPY_AWARE__;  // the request fields a ticked copy box adds

function messages() {
  return [{role: "user", content: $("prompt").value}];
}

async function sendOne() {
  $("send").disabled = true;
  try {
    const body = {model: $("model").value, messages: messages()};
    if ($("copy").checked) Object.assign(body, COPY_AWARE);  // copy bias + requested names (lessons_lib.copying)
    await ask(body,
              {answer: $("answer"), adapter: $("adapter"), route: $("route"), status: $("status"),
               detail: $("detail")});
  } finally {
    $("send").disabled = false;
  }
}

async function sendMix() {
  const weights = {};
  for (const range of document.querySelectorAll("#sliders input[type=range]")) {
    const w = Number(range.value);
    if (w > 0) weights[range.dataset.adapter] = w;  // 0 leaves the adapter out
  }
  const view = {answer: $("mix-answer"), adapter: $("mix-adapter"), status: $("mix-status")};
  const body = Object.keys(weights).length
    ? {model: "mix", adapter_weights: weights, messages: messages()}
    : {model: "base", messages: messages()};  // every weight 0: the bare base answers
  $("send-mix").disabled = true;
  try {
    await ask(body, view);
  } finally {
    $("send-mix").disabled = false;
  }
}

async function compare() {
  const chosen = [...document.querySelectorAll("#compare-models input:checked")].map((b) => b.value);
  const columns = $("columns");
  columns.innerHTML = "";
  if (chosen.length < 1) {
    $("compare-status").textContent = "tick at least one model";
    return;
  }
  $("compare-send").disabled = true;
  $("compare-status").textContent = "asking " + chosen.length + " models at once...";
  const jobs = chosen.map((model) => {
    const view = {answer: el("div", {className: "answer"}), adapter: el("b", {textContent: "-"}),
                  route: el("p", {className: "meta"}), status: el("span", {className: "meta"})};
    const column = el("div", {className: "column"}, el("h3", {textContent: model}), view.answer,
                      el("p", {className: "meta"}, "Answered by: ", view.adapter, " ", view.status), view.route);
    column.dataset.model = model;
    columns.append(column);
    return ask({model: model, messages: messages()}, view);
  });
  await Promise.all(jobs);
  $("compare-status").textContent = "done";
  $("compare-send").disabled = false;
}

$("send").addEventListener("click", sendOne);
$("send-mix").addEventListener("click", sendMix);
$("compare-send").addEventListener("click", compare);
loadModels();
</script>
</body>
</html>
""".replace("__COPY_AWARE__", json.dumps(copy_aware_kwargs()))

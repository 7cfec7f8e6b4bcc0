"""The web page served at `/`: ask one model, mix adapters with weight sliders, or compare models side by side.

Plain HTML + JavaScript, no external assets (it works offline and behind any firewall). Answers stream in as
they are generated (`stream: true`, read with fetch + ReadableStream from the server-sent events); a server that
answers with JSON instead is read as JSON. For `auto` the page shows the router's choice and scores. A box turns on
copy-aware decoding (the `copy_bias` and `requested_names` extensions, as `copying.copy_aware_kwargs` gives them).
A stream that ends before `data: [DONE]` is shown as interrupted (the partial answer stays), and an error response,
JSON or not (a proxy's HTML 502), is shown as `error STATUS: message`.

The page speaks the server's language ($LESSONS_LANG: English, or Russian with `ru`); `GET /?lang=en` or
`GET /?lang=ru` (any case; blank = absent) picks one for that load, and any other value is a 400 error object naming
`lang` (`page_language`), as every bad request to this server is. Texts the server writes (error messages, the
router's reason) come in the server's language. Every text is a `{{name}}` slot of TEMPLATE filled by `texts`
(escaped as a JavaScript string inside the script); element ids are the same in both languages. PAGE_HTML is the
English page.
"""

import json
import re
from functools import lru_cache

from ..copying import copy_aware_kwargs
from ..i18n import LANGS, current, resolve_lang, tr
from .protocol import ApiError

SLOT = re.compile(r"\{\{(\w+)\}\}")
SCRIPT = "<script>"  # slots after this are inside JavaScript strings

TEMPLATE = """<!doctype html>
<html lang="{{lang}}">
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
<p class="meta">{{intro}}</p>
<label for="prompt">{{prompt}}</label>
<textarea id="prompt" placeholder="{{prompt_example}}"></textarea>

<section id="single">
  <h2>{{ask_one}}</h2>
  <div class="row">
    <label for="model">{{model}}</label>
    <select id="model"><option value="">{{loading}}</option></select>
    <button id="send" type="button" disabled>{{send}}</button>
    <label class="meta"><input type="checkbox" id="copy"> {{copy_names}}
      (<code>copy_bias</code>, <code>requested_names</code>)</label>
    <span id="status" class="meta">{{loading_models}}</span>
  </div>
  <div id="answer" class="answer" aria-live="polite"></div>
  <p class="meta">{{answered_by}} <b id="adapter">-</b> <span id="detail"></span></p>
  <p class="meta" id="route"></p>
</section>

<section id="mixer">
  <h2>{{mix_title}}</h2>
  <p class="meta">{{mix_help}}</p>
  <div id="sliders"></div>
  <div class="row">
    <button id="send-mix" type="button" disabled>{{send_mix}}</button>
    <span id="mix-status" class="meta"></span>
  </div>
  <div id="mix-answer" class="answer" aria-live="polite"></div>
  <p class="meta">{{answered_by}} <b id="mix-adapter">-</b></p>
</section>

<section id="compare">
  <h2>{{compare_title}}</h2>
  <p class="meta">{{compare_help}}</p>
  <div id="compare-models" class="row"></div>
  <div class="row">
    <button id="compare-send" type="button" disabled>{{compare}}</button>
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
  if (m.kind === "router") return m.id + "{{router_picks}}";
  if (m.kind === "mix") return m.id + "{{a_mix}}";
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
    $("status").textContent = "{{ready}}";
    document.body.dataset.ready = "1";
  } catch (err) {
    $("status").textContent = "{{cannot_list}}" + (err.message || err);
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
  if (json && json.error && json.error.message) return "{{error}} " + response.status + ": " + json.error.message;
  const words = (text || "").replace(/<[^>]*>/g, " ").replace(/\\s+/g, " ").trim().slice(0, 200);
  if (response.ok) return "{{unexpected}}" + (words || "{{empty_body}}");
  return "{{error}} " + response.status + (words ? ": " + words : (response.statusText ? " " + response.statusText : ""));
}

function routeText(route) {
  if (!route) return "";
  const scores = Object.entries(route.scores || {}).map(([k, v]) => k + " " + Number(v).toFixed(2)).join(", ");
  return "{{router}}" + route.label + " -> " + route.adapter + (scores ? " ({{scores}}: " + scores + ")" : "")
         + (route.reason ? "; " + route.reason : "");
}

// Send one chat request and fill `view` ({answer, adapter, route, status, detail} elements) as the answer arrives.
async function ask(body, view) {
  view.answer.textContent = "";
  view.adapter.textContent = "-";
  if (view.route) view.route.textContent = "";
  if (view.detail) view.detail.textContent = "";
  view.status.textContent = "{{thinking}}";
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
        view.detail.textContent = json.timing.latency_ms + "{{ms_batch_of}}" + json.timing.batch_size;
      }
    } else {
      view.answer.dataset.mode = "stream";
      await readStream(response, view);
      if (view.detail) view.detail.textContent = Math.round(performance.now() - started) + "{{ms_streamed}}";
    }
    view.status.textContent = "{{done}}";
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
      throw new Error("{{broke}}" + (err.message || err) + ")");
    });
    if (done) throw new Error("{{cut_off}}"
                              + "{{cut_off_end}}");
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
    $("compare-status").textContent = "{{tick_one}}";
    return;
  }
  $("compare-send").disabled = true;
  $("compare-status").textContent = "{{asking}}" + chosen.length + "{{at_once}}";
  const jobs = chosen.map((model) => {
    const view = {answer: el("div", {className: "answer"}), adapter: el("b", {textContent: "-"}),
                  route: el("p", {className: "meta"}), status: el("span", {className: "meta"})};
    const column = el("div", {className: "column"}, el("h3", {textContent: model}), view.answer,
                      el("p", {className: "meta"}, "{{answered_by}} ", view.adapter, " ", view.status), view.route);
    column.dataset.model = model;
    columns.append(column);
    return ask({model: model, messages: messages()}, view);
  });
  await Promise.all(jobs);
  $("compare-status").textContent = "{{done}}";
  $("compare-send").disabled = false;
}

$("send").addEventListener("click", sendOne);
$("send-mix").addEventListener("click", sendMix);
$("compare-send").addEventListener("click", compare);
loadModels();
</script>
</body>
</html>
"""  # noqa: E501 - the slot in failure()'s last line runs 2 columns past the English text


def texts(lang: str) -> dict[str, str]:
    """Every text of the page in `lang`, by its slot's name."""

    def say(en: str, ru: str) -> str:
        return tr(en=en, ru=ru, lang=lang)

    return {
        "lang": lang,
        "intro": say(
            en="""One base model, several LoRA adapters, one OpenAI-compatible API
(<code>POST /v1/chat/completions</code>). Ask one model (<b>auto</b> lets the router choose), mix the adapters
with weights, or compare models side by side. Answers stream in as they are generated.""",
            ru="""Одна базовая модель, несколько адаптеров LoRA и один API, совместимый с OpenAI
(<code>POST /v1/chat/completions</code>). Спросите одну модель (для <b>auto</b> её выбирает маршрутизатор),
смешайте адаптеры с весами или сравните модели рядом. Ответы приходят потоком, по мере генерации.""",
        ),
        "prompt": say(en="Prompt", ru="Промпт"),
        "prompt_example": say(en="Extract the order as JSON: ...", ru="Разбери текст в JSON (name, age, city): ..."),
        "ask_one": say(en="Ask one model", ru="Спросить одну модель"),
        "model": say(en="Model", ru="Модель"),
        "loading": say(en="loading...", ru="загрузка..."),
        "send": say(en="Send", ru="Отправить"),
        "copy_names": say(en="copy names exactly", ru="копировать имена точно"),
        "loading_models": say(en="loading models...", ru="загрузка моделей..."),
        "answered_by": say(en="Answered by:", ru="Ответил:"),
        "mix_title": say(en="Mix adapters", ru="Смешивание адаптеров"),
        "mix_help": say(
            en="""Each slider is one adapter's weight (0 leaves it out, 1 = as trained, 2 = twice as strong).
  Sent as <code>model="mix"</code> with <code>adapter_weights</code>. An adapter that trained its own copy of a
  module (tools: lm_head) cannot be mixed and has no slider.""",
            ru="""Каждый ползунок — вес одного адаптера (0 — адаптер не участвует, 1 — как обучен, 2 — вдвое сильнее).
  Отправляется как <code>model="mix"</code> с <code>adapter_weights</code>. Адаптер, обучивший собственную копию
  модуля (tools: lm_head), смешать нельзя, и ползунка у него нет.""",
        ),
        "send_mix": say(en="Send mix", ru="Отправить смесь"),
        "compare_title": say(en="Compare", ru="Сравнение"),
        "compare_help": say(
            en="One prompt to several models at once; each column streams its own answer.",
            ru="Один промпт сразу нескольким моделям; в каждую колонку её ответ приходит потоком.",
        ),
        "compare": say(en="Compare", ru="Сравнить"),
        # inside the script
        "router_picks": say(en=" (router picks)", ru=" (выбирает маршрутизатор)"),
        "a_mix": say(en=" (mix)", ru=" (смесь)"),
        "ready": say(en="ready", ru="модели загружены"),
        "cannot_list": say(en="cannot list models: ", ru="не удалось получить список моделей: "),
        "error": say(en="error", ru="ошибка"),
        "unexpected": say(
            en="unexpected answer (not this course's API?): ", ru="неожиданный ответ (это не API курса?): "
        ),
        "empty_body": say(en="empty body", ru="пустое тело ответа"),
        "router": say(en="Router: ", ru="Маршрутизатор: "),
        "scores": say(en="scores", ru="оценки"),
        "thinking": say(en="thinking...", ru="модель отвечает..."),
        "ms_batch_of": say(en=" ms, batch of ", ru=" мс, размер батча "),
        "ms_streamed": say(en=" ms, streamed", ru=" мс, потоком"),
        "done": say(en="done", ru="готово"),
        "broke": say(
            en="interrupted: the connection broke mid-answer (", ru="прервано: соединение оборвалось посреди ответа ("
        ),
        # one message in two halves (the script breaks its line there)
        "cut_off": say(
            en="interrupted: the answer was cut off (the stream ended before [DONE]; did the server ",
            ru="прервано: ответ оборвался (поток закончился до [DONE]; ",
        ),
        "cut_off_end": say(en="stop?)", ru="сервер остановился?)"),
        "tick_one": say(en="tick at least one model", ru="отметьте хотя бы одну модель"),
        # "asking 3 models at once...": the count goes between the two
        "asking": say(en="asking ", ru="спрашиваю модели одновременно ("),
        "at_once": say(en=" models at once...", ru=")..."),
    }


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with every `{{name}}` slot replaced: as it is in the HTML, as a JavaScript string's content after
    SCRIPT."""
    cut = template.index(SCRIPT)
    as_js = {name: json.dumps(value, ensure_ascii=False)[1:-1] for name, value in values.items()}
    return SLOT.sub(lambda m: values[m.group(1)], template[:cut]) + SLOT.sub(
        lambda m: as_js[m.group(1)], template[cut:]
    )


def page_html(lang: str | None = None) -> str:
    """The page in `lang` ("en" or "ru"; None: $LESSONS_LANG as it is now)."""
    return _page_in(resolve_lang(lang))


@lru_cache(maxsize=len(LANGS))
def _page_in(lang: str) -> str:
    """The page in a resolved language, built once per language."""
    return fill(TEMPLATE, texts(lang)).replace("__COPY_AWARE__", json.dumps(copy_aware_kwargs()))


def page_language(query: str | None) -> str:
    """The language of a request for `/`: `?lang=` (en or ru, any case; blank counts as absent), else the server's;
    any other value is a 400 naming `lang`."""
    if query is None or not query.strip():
        return current()
    value = query.strip().lower()
    if value not in LANGS:
        shown = query[:40]
        raise ApiError(
            400,
            tr(
                en=f"Unknown page language {shown!r} in ?lang=: use ?lang=en or ?lang=ru, or leave lang out for the "
                f"server's language ({current()}).",
                ru=f"Неизвестный язык страницы {shown!r} в ?lang=: укажите ?lang=en или ?lang=ru либо уберите lang, "
                f"и страница будет на языке сервера ({current()}).",
            ),
            code="invalid_value",
            param="lang",
        )
    return value


PAGE_HTML = page_html("en")

"""The small web page served at `/`: a prompt box, an adapter dropdown (incl. auto), the answer and who answered."""

PAGE_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>LoRA Adapter Lab</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  textarea { width: 100%; min-height: 6rem; font: inherit; }
  select, button { font: inherit; padding: .3rem .6rem; }
  .row { display: flex; gap: .6rem; align-items: center; margin: .6rem 0; }
  #answer { white-space: pre-wrap; background: #f4f4f4; padding: .8rem; border-radius: .4rem; min-height: 2rem; }
  .meta { color: #555; font-size: .9rem; }
  .error { color: #b00020; }
</style>
</head>
<body>
<h1>LoRA Adapter Lab</h1>
<p class="meta">One base model, several LoRA adapters, one OpenAI-compatible API
(<code>POST /v1/chat/completions</code>). Pick an adapter, or <b>auto</b> to let the router choose.</p>
<label for="prompt">Prompt</label>
<textarea id="prompt" placeholder="Extract the order as JSON: ..."></textarea>
<div class="row">
  <label for="model">Adapter</label>
  <select id="model"><option value="">loading...</option></select>
  <button id="send" type="button" disabled>Send</button>
  <span id="status" class="meta">loading models...</span>
</div>
<div id="answer" aria-live="polite"></div>
<p class="meta">Answered by: <b id="adapter">-</b> <span id="detail"></span></p>
<script>
const $ = (id) => document.getElementById(id);

async function loadModels() {
  try {
    const response = await fetch("/v1/models");
    const body = await response.json();
    const select = $("model");
    select.innerHTML = "";
    for (const m of body.data) {
      const option = document.createElement("option");
      option.value = m.id;
      option.textContent = m.kind === "router" ? m.id + " (router picks)" : m.id;
      select.appendChild(option);
    }
    $("send").disabled = false;
    $("status").textContent = "ready";
    document.body.dataset.ready = "1";
  } catch (err) {
    $("status").textContent = "cannot list models: " + err;
    $("status").className = "meta error";
  }
}

async function send() {
  const prompt = $("prompt").value;
  $("send").disabled = true;
  $("status").textContent = "thinking...";
  $("status").className = "meta";
  $("answer").textContent = "";
  $("adapter").textContent = "-";
  $("detail").textContent = "";
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({model: $("model").value, messages: [{role: "user", content: prompt}]}),
    });
    const body = await response.json();
    if (!response.ok) {
      $("status").textContent = "error " + response.status + ": " + body.error.message;
      $("status").className = "meta error";
      return;
    }
    $("answer").textContent = body.choices[0].message.content;
    $("adapter").textContent = body.adapter;
    const route = body.route ? " (router: " + body.route.reason + ")" : "";
    $("detail").textContent = body.timing.latency_ms + " ms, batch of " + body.timing.batch_size + route;
    $("status").textContent = "done";
  } catch (err) {
    $("status").textContent = "request failed: " + err;
    $("status").className = "meta error";
  } finally {
    $("send").disabled = false;
  }
}

$("send").addEventListener("click", send);
loadModels();
</script>
</body>
</html>
"""

# %% [markdown]
# # 06 — Deploy: one base and its adapters behind an API
#
# So far every lesson called the model from inside the notebook. Real users send requests over HTTP — many
# at once, each wanting a different adapter. In this lesson we run a small **OpenAI-compatible server** that
# holds one base model and all our LoRA adapters, call it with plain HTTP and with the `openai` client,
# measure latency and throughput under concurrency, make sure concurrent requests never get each other's
# adapter, and finally generate the command that moves the same adapters to **vLLM** or **LoRAX** when a
# class outgrows one GPU.

# %% [markdown] lang="ru"
# # 06 — Развёртывание: одна базовая модель и её адаптеры за API
#
# До сих пор в каждом уроке мы вызывали модель прямо из ноутбука. Настоящие пользователи присылают запросы по HTTP —
# много сразу, и каждому нужен свой адаптер. В этом уроке мы запустим небольшой **OpenAI-совместимый сервер**, который
# держит одну базовую модель и все наши LoRA-адаптеры, обратимся к нему через обычный HTTP и через клиент `openai`,
# измерим задержку и пропускную способность при параллельных запросах, убедимся, что параллельные запросы никогда не
# получают чужой адаптер, и, наконец, сгенерируем команду, которая переносит те же адаптеры на **vLLM** или **LoRAX**,
# когда группе учащихся становится мало одного GPU.

# %% [markdown]
# ## Learning objectives
# - Explain why PEFT's *active adapter* is global state, and why a web server must not call `set_adapter`
#   per request from several threads.
# - Serve concurrent requests safely with one **mixed-adapter batch** (`generate(..., adapter_names=[...])`).
# - Start the server in the background, call `/health`, `/v1/models` and `/v1/chat/completions` with
#   `httpx` and with the `openai` client, choose an adapter per request with `model=...`, and stop it cleanly.
# - Read the server's errors: unknown model (404), empty messages (400), prompt too long (400), path-like
#   adapter names (refused).
# - Hand the same adapters to vLLM (`--enable-lora --lora-modules '{"name": ..., "path": ...}'`) or LoRAX, unchanged.

# %% [markdown] lang="ru"
# ## Цели урока
# - Объяснить, почему *активный адаптер* PEFT — это глобальное состояние и почему веб-сервер не должен вызывать
#   `set_adapter` на каждый запрос из нескольких потоков.
# - Безопасно обслуживать параллельные запросы одним **смешанным батчем адаптеров**
#   (`generate(..., adapter_names=[...])`).
# - Запустить сервер в фоне, обратиться к `/health`, `/v1/models` и `/v1/chat/completions` через `httpx` и через
#   клиент `openai`, выбирать адаптер для каждого запроса параметром `model=...` и корректно остановить сервер.
# - Понимать ошибки сервера: неизвестная модель (404), пустой список сообщений (400), слишком длинный промпт (400),
#   имена адаптеров, похожие на пути (отклоняются).
# - Передать те же адаптеры без изменений в vLLM
#   (`--enable-lora --lora-modules '{"name": ..., "path": ...}'`) или LoRAX.

# %% [markdown]
# Parameters. `USE_DRIVE = None` (the default) uses Google Drive when you run on Colab with the `t4` or `7b`
# profile, and a local folder otherwise. On Colab each notebook opens its own runtime, whose disk is wiped when it
# disconnects: Drive is where this notebook finds the adapters notebook 01 trained (and keeps what it trains
# itself). If you decline Drive access, or mounting fails, the lesson goes on in the local folder and says so;
# `True` / `False` force the choice. Whatever is found nowhere is trained here first, and the estimated time is
# printed before that starts.

# %% [markdown] lang="ru"
# Параметры. `USE_DRIVE = None` (по умолчанию) использует Google Диск, когда вы работаете в Colab с профилем `t4` или
# `7b`, а в остальных случаях — локальную папку. В Colab каждый ноутбук открывает свою среду выполнения, и её диск
# стирается при отключении: на Google Диске этот ноутбук находит адаптеры, обученные в ноутбуке 01 (и хранит то, что
# обучает сам). Если вы не разрешите доступ к Google Диску или подключение не удастся, урок продолжится в локальной
# папке и сообщит об этом; `True` / `False` задают выбор явно. То, что нигде не найдено, сначала обучается здесь, и
# перед этим печатается оценка времени.

# %% tags=["parameters"]
PROFILE = None  # "tiny" | "t4" | "7b" (or "t4-rehearsal" | "7b-rehearsal" on a CPU); None = automatic
USE_DRIVE = None  # None: Google Drive on Colab with t4/7b (where notebook 01 saves), else local; True/False
HUB_NAMESPACE = None  # your Hub user/org if notebook 01 pushed adapters there (lora-lab-<profile>-<name>)

# %%
from lessons_lib.lesson import setup_lesson

lesson = setup_lesson("06", profile=PROFILE, use_drive=USE_DRIVE, hub_namespace=HUB_NAMESPACE)

# %% [markdown]
# On a GPU profile one copy of the base (+ its three adapters) is on the GPU at a time: the notebook's first, then
# — after we free it — the server's, in its own process. On the real model (t4: TinyLlama-1.1B, 7b: Mistral-7B):

# %% [markdown] lang="ru"
# На GPU-профиле в каждый момент на GPU находится одна копия базовой модели (+ три её адаптера): сначала копия
# ноутбука, затем —
# после того как мы её освободим — копия сервера в его собственном процессе. Для настоящей модели (t4: TinyLlama-1.1B,
# 7b: Mistral-7B):

# %%
from lessons_lib import budget
from lessons_lib.i18n import plural_ru, tr  # printed text in the notebook's language (LESSONS_LANG)

print(budget.memory_plan(lesson.profile, "06"))

# %% [markdown]
# ## 1. The problem: the active adapter is global
#
# A `PeftModel` has **one** active adapter at a time: `model.set_adapter("json")` changes every LoRA layer
# of the model. A web server answers many requests at once (threads, or an event loop handing work to
# threads). If request A calls `set_adapter("json")` and, before A's `generate` finishes, request B calls
# `set_adapter("support")`, A's remaining tokens come from the support adapter: **cross-talk**. A lock
# around `set_adapter + generate` is correct but serves one request at a time.
#
# PEFT has a better tool, which we met in notebook 02: a **mixed batch**. Every row of one `generate` call
# names its own adapter through `adapter_names` (`"__base__"` = the bare base), and no global state
# changes. Let us check once more, on this profile's model, that a mixed batch gives the answers of
# one-adapter runs — the property our server relies on:
#
# - On the fp32 CPU path (tiny) the answers are identical and the logits agree within 1e-4.
# - On a GPU, fp16 or bf16 kernels for a batch of 12 and for a single row split their sums differently, and a
#   near-tie can flip a token: we require 80% of the answers identical (`lessons_lib.checks`). A CPU rehearsal's
#   4-bit tiny weights and barely trained adapters are full of near-ties, so there the share is printed, not asserted.
# - On every profile the logits of each row's first answer token must match the same batch run with its own adapter
#   on every row (same padding, same kernels: within the stated fp16 or bf16 tolerance, since only the LoRA part runs
#   on a smaller sub-batch) and be nearer to it than to any other adapter's run — that is what a wrong adapter would
#   break, however noisy the kernels.
#
# The course adapters come from where notebook 01 left them (work dir, Drive, the Hub) or, in a fresh runtime
# without them, from a quick training run right here.

# %% [markdown] lang="ru"
# ## 1. Проблема: активный адаптер глобален
#
# У `PeftModel` в каждый момент **один** активный адаптер: `model.set_adapter("json")` меняет все LoRA-слои
# модели. Веб-сервер отвечает на много запросов одновременно (потоки или цикл событий, раздающий работу
# потокам). Если запрос A вызывает `set_adapter("json")`, а запрос B, прежде чем `generate` запроса A завершится,
# вызывает `set_adapter("support")`, оставшиеся токены A порождает адаптер support: это **перекрёстные помехи**
# (cross-talk).
# Блокировка вокруг `set_adapter + generate` корректна, но обслуживает запросы по одному.
#
# В PEFT есть инструмент получше, мы встречали его в ноутбуке 02: **смешанный батч**. Каждая строка одного вызова
# `generate` называет свой адаптер через `adapter_names` (`"__base__"` — голая базовая модель), и никакое глобальное
# состояние не меняется. Проверим ещё раз, на модели этого профиля, что смешанный батч даёт те же ответы, что и
# запуски с одним адаптером, — на этом свойстве держится наш сервер:
#
# - На пути fp32 на CPU (tiny) ответы идентичны, а логиты совпадают с точностью до 1e-4.
# - На GPU ядра fp16 или bf16 для батча из 12 строк и для одной строки суммируют в разном порядке, и почти равные
#   варианты могут поменяться местами: мы требуем, чтобы 80% ответов совпадали (`lessons_lib.checks`). В CPU-репетиции
#   4-битные веса tiny и едва обученные адаптеры полны почти равных вариантов, поэтому там доля только печатается, но
#   не проверяется.
# - На любом профиле логиты первого токена ответа каждой строки должны совпасть с запуском того же батча, где у всех
#   строк её адаптер (то же дополнение, те же ядра: в пределах заявленного допуска fp16 или bf16, ведь только часть
#   LoRA считается на меньшем подбатче), и быть ближе к нему, чем к запуску любого другого адаптера, — именно это
#   нарушил бы чужой адаптер, как бы ни шумели ядра.
#
# Адаптеры курса берутся оттуда, где их оставил ноутбук 01 (рабочая папка, Google Диск, Hugging Face Hub), а в новой
# среде выполнения, где их нет, — из быстрого обучения прямо здесь.

# %%
import time

from peft import PeftModel

from lessons_lib.adapters import COURSE_ADAPTERS, course_artifacts
from lessons_lib.checks import agreement, answers_agree, exact_kernels, expects_quality
from lessons_lib.data import DOMAINS, examples
from lessons_lib.lesson import plan_quick_training
from lessons_lib.models import free_memory, generate, load_base, load_tokenizer
from lessons_lib.router.routed import check_mixed_batch, describe_checks

profile = lesson.profile
tok = load_tokenizer(profile)
plan_quick_training(lesson)  # what is found nowhere and so trained first, with the estimated time
folders = course_artifacts(lesson)  # shipped / work dir / Drive / Hub, or a quick training run right here
model = PeftModel.from_pretrained(load_base(profile), folders["json"], adapter_name="json")
for name in ("coding", "support"):
    model.load_adapter(folders[name], adapter_name=name)
model.eval()

prompts = [examples(domain, 1, "heldout", seed=6)[0].prompt for domain in DOMAINS]
rows = [(p, name) for p in prompts for name in (*COURSE_ADAPTERS, "__base__")]
SHORT = min(24, profile.max_new_tokens)  # answer tokens in this lesson's demos

start = time.perf_counter()
mixed = generate(model, tok, [p for p, _ in rows], SHORT, adapter_names=[n for _, n in rows])
mixed_s = time.perf_counter() - start
start = time.perf_counter()
one_by_one = [generate(model, tok, p, SHORT, adapter_names=[n]) for p, n in rows]
single_s = time.perf_counter() - start
print(
    tr(
        en=f"{len(rows)} rows: one mixed batch {mixed_s:.2f} s, one row at a time {single_s:.2f} s "
        f"({single_s / mixed_s:.1f}x)",
        ru=f"{len(rows)} {plural_ru(len(rows), 'строка', 'строки', 'строк')}: один смешанный батч {mixed_s:.2f} с, "
        f"по одной строке {single_s:.2f} с "
        f"({single_s / mixed_s:.1f}x)",
    )
)
row_checks = check_mixed_batch(model, tok, [p for p, _ in rows], [n for _, n in rows], profile)
print(
    tr(en="answers identical to one-adapter runs:", ru="ответы, совпадающие с прогонами одного адаптера:"),
    f"{agreement(mixed, one_by_one):.0%}",
)
print(describe_checks(row_checks))
assert all(r.ok for r in row_checks), row_checks
if exact_kernels(profile) or expects_quality(profile):
    assert answers_agree(mixed, one_by_one, profile), "a mixed batch must give the one-adapter answers"

# %% [markdown]
# Now the naive server pattern, for contrast: every "request" runs in its own thread and calls
# `set_adapter(name)` and then `generate`. We compare each answer with its adapter's one-adapter answer above
# and with the answers the *other* adapters give to the same prompt: another adapter's answer is cross-talk; an
# answer no adapter gives switched adapters half-way through. How many come out wrong depends on how the
# threads interleave, so the count changes from run to run — a race, which is exactly why it is dangerous.

# %% [markdown] lang="ru"
# Теперь для контраста наивная схема сервера: каждый «запрос» выполняется в своём потоке и вызывает
# `set_adapter(name)`, а затем `generate`. Мы сравниваем каждый ответ с ответом его адаптера при запуске с одним
# адаптером (см. выше) и с ответами, которые *другие* адаптеры дают на тот же промпт: ответ другого адаптера — это
# перекрёстные помехи; ответ, которого не даёт ни один адаптер, означает, что адаптер переключился на полпути. Сколько
# ответов окажутся неверными, зависит от того, как чередуются потоки, поэтому число меняется от запуска к запуску — это
# гонка, и именно поэтому она опасна.

# %%
from concurrent.futures import ThreadPoolExecutor

from lessons_lib.serve.crosstalk import cross_talk_report

adapter_rows = [(p, n) for p, n in rows if n != "__base__"]  # set_adapter cannot select the bare base


def naive_request(row):
    prompt, name = row
    model.set_adapter(name)  # noqa: F821 - global: changes the adapter for every thread (`del model` comes later)
    return generate(model, tok, prompt, SHORT)  # noqa: F821


with ThreadPoolExecutor(max_workers=4) as pool:
    naive = list(pool.map(naive_request, adapter_rows))
references = dict(zip(rows, one_by_one))  # (prompt, adapter) -> that adapter's answer, one row at a time
naive_report = cross_talk_report(naive, [p for p, _ in adapter_rows], [n for _, n in adapter_rows], references)
print(
    tr(en="naive set_adapter + generate from 4 threads:", ru="наивные set_adapter + generate из 4 потоков:"),
    naive_report.summary(),
)

# %% [markdown]
# (A larger run, measured once on the course's 2-CPU machine — 36 requests from 8 threads — got 33 of 36 wrong.) A lock
# around `set_adapter` + `generate` would fix it but serve one request at a time. The server in
# `lessons_lib/serve/engine.py` is built on the mixed batch instead. **One worker thread owns the model.**
# HTTP handlers never touch it: they validate the request, put it on a queue and wait. The worker takes the
# first request, collects whatever else arrives within ~10 ms (up to 32 requests), routes the `auto` ones,
# and runs **one** `generate` with `adapter_names=[...]`. Each row is cut at its own `max_tokens` (greedy
# rows do not depend on their neighbours), and if a batch fails, each request is retried alone, so one bad
# request fails only itself. The notebook's copy of the model is not needed any more: we free it.

# %% [markdown] lang="ru"
# (Прогон побольше, один замер на 2-процессорной машине курса — 36 запросов из 8 потоков: 33 из 36 неверны.) Блокировка
# вокруг `set_adapter` + `generate` решила бы проблему, но обслуживала бы запросы по одному. Сервер в
# `lessons_lib/serve/engine.py` построен вместо этого на смешанном батче. **Моделью владеет один рабочий поток.**
# Обработчики HTTP её не трогают: они проверяют запрос, кладут его в очередь и ждут. Рабочий поток берёт первый
# запрос, собирает всё, что придёт в течение ~10 мс (до 32 запросов), маршрутизирует запросы `auto` и запускает
# **один** `generate` с `adapter_names=[...]`. Каждая строка обрезается по своему `max_tokens` (жадные строки не
# зависят от соседей), а если батч падает, каждый запрос повторяется отдельно, так что плохой запрос ломает только
# себя. Копия модели в ноутбуке больше не нужна: освобождаем её.

# %%
del model
free_memory()  # on a GPU: the server process loads its own copy next

# %% [markdown]
# ## 2. Start the server in the background
#
# The server is one command: `python -m lessons_lib.serve --profile tiny --host 127.0.0.1 --port 8000`.
# We start it as a **subprocess**, so this notebook's kernel stays free to send it requests, and poll
# `GET /health` until the model is loaded. Its log goes to a file in the work folder.
#
# `--lora-modules name=path ...` hands it exactly the adapter folders this notebook found above, wherever they
# came from (the work dir, Drive, the Hub's download cache, a quick training run) — the same flag vLLM takes in
# section 7 — plus notebook 05's tools adapter where one exists (none is trained here; section 4's tool calls then
# go to the base). A GPU server takes a while to start (7b: loading and quantizing the 7B base), hence the long
# timeout.
#
# It listens on `127.0.0.1` (loopback) by default: only this machine can reach it. The course server has no
# authentication, so expose it on purpose (Colab's port proxy below, or `--host 0.0.0.0` behind a firewall),
# never by accident.

# %% [markdown] lang="ru"
# ## 2. Запускаем сервер в фоне
#
# Сервер — это одна команда: `python -m lessons_lib.serve --profile tiny --host 127.0.0.1 --port 8000`.
# Мы запускаем его как **подпроцесс**, чтобы ядро этого ноутбука оставалось свободным для запросов, и опрашиваем
# `GET /health`, пока модель не загрузится. Журнал сервера пишется в файл в рабочей папке.
#
# `--lora-modules name=path ...` передаёт ему ровно те папки адаптеров, которые ноутбук нашёл выше, откуда бы они
# ни взялись (рабочая папка, Google Диск, кэш загрузок Hugging Face Hub, быстрое обучение), — тот же флаг, что принимает
# vLLM в разделе 7, — и адаптер инструментов из ноутбука 05, если он есть (здесь его не обучаем; тогда вызовы
# инструментов из раздела 4 идут к базовой модели). GPU-серверу нужно время на запуск (7b: загрузка и квантование
# базовой модели 7B), отсюда долгий тайм-аут.
#
# По умолчанию он слушает `127.0.0.1` (loopback): достучаться до него может только эта машина. У сервера курса нет
# аутентификации, поэтому открывайте его наружу сознательно (через прокси портов Colab ниже или `--host 0.0.0.0` за
# файрволом), а не случайно.

# %%
import httpx

from lessons_lib.adapters import find_artifact
from lessons_lib.serve.process import free_port, server_command, start_server

PORT = free_port()
extra = ["--lora-modules", *(f"{name}={folders[name]}" for name in COURSE_ADAPTERS)]
tool_adapter = find_artifact("tools", profile, lesson.work_dir, lesson.hub_namespace)  # notebook 05's, if found
if tool_adapter is not None:
    extra.append(f"tools={tool_adapter.folder}")
print(" ".join(server_command(profile.name, PORT, extra=extra)))
# subprocess.Popen(that command) + poll GET /health until it answers (the server's output goes to the log file)
start = time.perf_counter()
server, URL = start_server(profile.name, PORT, extra=extra, log_path=lesson.work_dir / "server.log", timeout=600)
health = httpx.get(f"{URL}/health", timeout=5).json()
print(
    tr(
        en=f"server ready in {time.perf_counter() - start:.1f} s at {URL}",
        ru=f"сервер готов за {time.perf_counter() - start:.1f} с по адресу {URL}",
    )
)
for key in ("status", "profile", "models", "not_served", "router", "max_prompt_tokens", "max_tokens"):  # + counters
    print(f"  {key}: {health[key]}")

# %% [markdown]
# **On Colab** the kernel runs on a remote machine, so `127.0.0.1` is not your laptop. Colab's port proxy
# gives the server a URL your browser can open (the web page at `/`). This cell does nothing elsewhere —
# locally, just open the URL printed above.

# %% [markdown] lang="ru"
# **В Colab** ядро работает на удалённой машине, поэтому `127.0.0.1` — это не ваш ноутбук. Прокси портов Colab
# даёт серверу URL, который может открыть ваш браузер (веб-страница по адресу `/`). В других средах эта ячейка ничего
# не делает — локально просто откройте URL, напечатанный выше.

# %%
from lessons_lib.env import in_colab

if in_colab():
    from google.colab.output import eval_js, serve_kernel_port_as_window

    print(
        tr(
            en="web page (opens in your browser through Colab's proxy):",
            ru="веб-страница (открывается в браузере через прокси Colab):",
        ),
        eval_js(f"google.colab.kernel.proxyPort({PORT})"),
    )
    serve_kernel_port_as_window(PORT, path="/")
else:
    print(
        tr(
            en=f"web page: {URL}/  (streamed answers, weight sliders for a mix, a side-by-side compare view, "
            "the router's choice for auto)",
            ru=f"веб-страница: {URL}/  (ответы потоком, ползунки весов для смеси, сравнение моделей рядом, "
            "выбор маршрутизатора для auto)",
        )
    )

# %% [markdown]
# ## 3. Plain HTTP
#
# The API follows OpenAI's: `GET /v1/models` lists what `model` may be — `base`, each adapter, and `auto`
# (a router from notebook 04 picks: the n-gram one by default, `--router` chooses another). `POST /v1/chat/completions`
# takes `model` and `messages`. The
# answer's `model` field (and the extra `adapter` field) says **which adapter answered**; for `auto`,
# `route` says why.

# %% [markdown] lang="ru"
# ## 3. Обычный HTTP
#
# API повторяет API OpenAI: `GET /v1/models` перечисляет допустимые значения `model` — `base`, каждый адаптер и `auto`
# (выбирает маршрутизатор из ноутбука 04: по умолчанию на n-граммах, другой задаёт `--router`).
# `POST /v1/chat/completions` принимает `model` и `messages`. Поле `model`
# в ответе (и дополнительное поле `adapter`) говорит, **какой адаптер ответил**; для `auto` поле `route` объясняет
# почему.

# %%
models = httpx.get(f"{URL}/v1/models").json()
model_ids = [m["id"] for m in models["data"]]
print(tr(en="models:", ru="модели:"), model_ids)
assert model_ids[:4] == ["base", "json", "coding", "support"]


def ask(model_name: str, prompt: str, max_tokens: int = SHORT) -> dict:
    """One chat request with httpx; returns the JSON answer."""
    body = {"model": model_name, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    response = httpx.post(f"{URL}/v1/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    return response.json()


json_prompt = prompts[0]
print(tr(en="prompt:", ru="промпт:"), json_prompt, "\n")
for name in model_ids:
    reply = ask(name, json_prompt)
    route = f"  <- {tr(en='router', ru='маршрутизатор')}: {reply['route']['reason']}" if reply["route"] else ""
    print(
        f"{name:8s} {tr(en='answered by', ru='ответил')} {reply['adapter']:8s} "
        f"{reply['timing']['latency_ms']:7.1f} {tr(en='ms', ru='мс')}  "
        f"{reply['choices'][0]['message']['content'][:60]!r}{route}"
    )
    assert reply["model"] == reply["adapter"] and (name == "auto" or reply["adapter"] == name)

# %% [markdown]
# ## 4. The `openai` client, pointed at our server
#
# Any OpenAI-compatible client works: only `base_url` changes (the API key is not checked here). The adapter
# is chosen per request with `model=`. Our server also accepts an **extension**: `model="mix"` with
# `adapter_weights` builds (once, then caches) a weighted `cat` combination of loaded adapters with PEFT's
# `add_weighted_adapter` — the openai client sends it through `extra_body`. So does the second extension,
# `copy_bias` (notebook 02's copy-aware decoding, e.g. `extra_body={"copy_bias": 6}`), and the third,
# `requested_names` (`extra_body={"requested_names": True}`: a function the answer defines takes the name the request
# gives, notebook 02); the web page's **copy names exactly** box sends both.
#
# The two comparisons below are exact on every profile, GPU included: the same request sent twice, each alone in
# its batch, runs the same kernels on the same weights; and a `cat` mix of one adapter at weight 1.0 holds that
# adapter's LoRA matrices (its scale, 2 here, folded into B — an exact multiplication).

# %% [markdown] lang="ru"
# ## 4. Клиент `openai`, направленный на наш сервер
#
# Подойдёт любой OpenAI-совместимый клиент: меняется только `base_url` (ключ API здесь не проверяется). Адаптер
# выбирается для каждого запроса параметром `model=`. Наш сервер принимает и **расширение**: `model="mix"` с
# `adapter_weights` строит (один раз, затем кэширует) взвешенное смешивание `cat` загруженных адаптеров с помощью
# `add_weighted_adapter` из PEFT — клиент openai передаёт его через `extra_body`. Так же передаётся и второе
# расширение, `copy_bias` (декодирование с копированием из ноутбука 02, например `extra_body={"copy_bias": 6}`), и
# третье, `requested_names` (`extra_body={"requested_names": True}`: функция, которую определяет ответ, получает имя
# из запроса, ноутбук 02); галочка **копировать имена точно** на веб-странице отправляет оба.
#
# Два сравнения ниже точны на любом профиле, включая GPU: один и тот же запрос, отправленный дважды и каждый раз один
# в своём батче, выполняет те же ядра на тех же весах; а смесь `cat` из одного адаптера с весом 1.0 содержит
# LoRA-матрицы
# этого адаптера (его масштаб, здесь 2, внесён в B — точное умножение).

# %%
from openai import OpenAI

client = OpenAI(base_url=f"{URL}/v1", api_key="not-needed")
print([m.id for m in client.models.list()])

support_prompt = prompts[2]
reply = client.chat.completions.create(
    model="support", messages=[{"role": "user", "content": support_prompt}], max_tokens=SHORT
)
print(reply.model, "->", reply.choices[0].message.content)
assert reply.model == "support"
assert reply.choices[0].message.content == ask("support", support_prompt)["choices"][0]["message"]["content"]

auto = client.chat.completions.create(
    model="auto", messages=[{"role": "user", "content": support_prompt}], max_tokens=SHORT
)
print(tr(en="auto picked", ru="auto выбрал"), auto.model)

mix = client.chat.completions.create(
    model="mix",
    messages=[{"role": "user", "content": support_prompt}],
    max_tokens=SHORT,
    extra_body={"adapter_weights": {"support": 1.0}},
)
print(mix.model, "->", mix.choices[0].message.content)
assert mix.choices[0].message.content == reply.choices[0].message.content  # a mix of one adapter at 1.0 is that adapter

# %% [markdown]
# ### Streaming, sampling and tool calls over HTTP
#
# Chat apps show an answer while it is being written. With `stream=True` the server answers with **server-sent
# events**: a `chat.completion.chunk` for each piece of text as soon as the decode loop makes it final, a last chunk
# with `finish_reason`, then `data: [DONE]`. A streamed request still shares its batch with everyone else's, so the
# pieces join into exactly the plain answer.
#
# Sampling is set per request, inside the same mixed batch: `temperature` with a `seed` gives a reproducible sample,
# `n` several choices, `stop` cuts the answer before a string. One deliberate difference from OpenAI: **without
# `temperature` this server decodes greedily** (OpenAI's API defaults to 1.0), so the course's answers reproduce.
#
# **Tool calls** use notebook 05's tools: send their JSON schemas as `tools`. With `tool_choice="required"` (or a
# named function) the server decodes under notebook 05's schema grammar, so the reply is always a valid call:
# `message.tool_calls` with an `id`, the function's name and its arguments as a JSON string, and
# `finish_reason="tool_calls"`. The course's extension `quote` (`extra_body={"quote": True}` in the openai SDK) adds
# notebook 05's quoting: the call's free-text arguments are whole phrases of your messages and its numbers yours, where
# the schema allows. Your code runs the tool and sends the result back as a `tool` message with that
# `tool_call_id`; the model then answers in words (with `quote`, an answer that starts repeating the result goes on
# repeating it exactly; it can still begin with a word of its own, as the tiny model does below). With `"auto"` the
# model decides, and a call it writes is parsed
# and checked against the schemas. **Structured outputs** use the same grammar: with
# `response_format={"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}` (what the openai SDK's
# `parse(response_format=YourPydanticModel)` and LangChain's `with_structured_output` send) the answer itself is
# decoded under the schema, so it always parses into your model. A field the server does not implement, or a schema
# keyword its grammar cannot keep, is never silently ignored: it gets a 400 that names it.

# %% [markdown] lang="ru"
# ### Потоковая передача, сэмплирование и вызовы инструментов по HTTP
#
# Чат-приложения показывают ответ, пока он пишется. С `stream=True` сервер отвечает **событиями, отправляемыми
# сервером** (server-sent events): `chat.completion.chunk` на каждый кусок текста, как только цикл декодирования
# сделал его окончательным, последний фрагмент с `finish_reason`, затем `data: [DONE]`. Потоковый запрос по-прежнему
# делит батч с запросами остальных, поэтому куски складываются ровно в обычный ответ.
#
# Сэмплирование задаётся для каждого запроса внутри того же смешанного батча: `temperature` вместе с `seed` даёт
# воспроизводимую выборку, `n` — несколько вариантов ответа, `stop` обрезает ответ перед строкой. Одно намеренное
# отличие от OpenAI: **без `temperature` этот сервер декодирует жадно** (API OpenAI по умолчанию берёт 1.0), чтобы
# ответы курса воспроизводились.
#
# **Вызовы инструментов** используют инструменты из ноутбука 05: передайте их JSON-схемы в `tools`. С
# `tool_choice="required"` (или с именем функции) сервер декодирует по грамматике схем из ноутбука 05, поэтому ответ
# всегда — корректный вызов: `message.tool_calls` с `id`, именем функции и аргументами в виде JSON-строки, и
# `finish_reason="tool_calls"`. Расширение курса `quote` (`extra_body={"quote": True}` в SDK openai) добавляет
# цитирование из ноутбука 05: текстовые аргументы вызова — целые фразы ваших сообщений, а числа — ваши, где схема это
# допускает. Ваш код выполняет инструмент и отправляет результат обратно сообщением `tool` с этим
# `tool_call_id`; затем модель отвечает словами (с `quote` ответ, начавший повторять результат, повторяет его точно;
# начать он всё же может со своего слова, как крошечная модель ниже). С `"auto"` решает модель, а написанный ею
# вызов разбирается и проверяется по схемам. **Структурированные ответы** используют ту же грамматику: с
# `response_format={"type": "json_schema", "json_schema": {"name": ..., "schema": ...}}` (это отправляют
# `parse(response_format=YourPydanticModel)` из SDK openai — с вашей моделью pydantic — и `with_structured_output`
# из LangChain) по схеме декодируется сам ответ, поэтому он всегда разбирается в вашу модель. Поле, которое сервер
# не поддерживает, или ключевое слово схемы, которое его грамматика не может соблюсти, никогда не игнорируется молча:
# на него приходит 400 с его именем.

# %%
import json

import openai

from lessons_lib.tools.functions import TOOLS as TOOL_FUNCTIONS
from lessons_lib.tools.loop import result_text
from lessons_lib.tools.schemas import tool_schemas

pieces = []
for chunk in client.chat.completions.create(
    model="json", messages=[{"role": "user", "content": json_prompt}], max_tokens=SHORT, stream=True
):
    if chunk.choices and chunk.choices[0].delta.content:
        pieces.append(chunk.choices[0].delta.content)
print(
    tr(
        en=f"streamed in {len(pieces)} pieces:",
        ru=f"пришло частями ({len(pieces)} {plural_ru(len(pieces), 'часть', 'части', 'частей')}):",
    ),
    pieces[:6],
    "...",
)
assert "".join(pieces) == ask("json", json_prompt)["choices"][0]["message"]["content"]  # same text as plain

samples = [
    client.chat.completions.create(
        model="support",
        messages=[{"role": "user", "content": support_prompt}],
        max_tokens=SHORT,
        n=3,
        temperature=1.0,
        seed=0,
    )
    for _ in range(2)
]
for choice in samples[0].choices:
    print(f"n={choice.index}:", repr(choice.message.content[:70]))
assert [c.message.content for c in samples[0].choices] == [c.message.content for c in samples[1].choices]  # same seed

refused = None
try:
    client.chat.completions.create(
        model="json", messages=[{"role": "user", "content": "hi"}], extra_body={"best_of": 2}
    )  # an OpenAI field this server does not implement
except openai.BadRequestError as err:
    refused = err
print(tr(en="refused:", ru="отклонено:"), refused.status_code, refused.param, "-", refused.message[:70])
assert refused.param == "best_of"

# %%
tool_model = "tools" if "tools" in model_ids else "base"  # notebook 05's adapter, where this profile has it
# Send the tools this conversation needs: each schema is rendered into the prompt (hundreds of tokens with a
# small tokenizer), and the server refuses a prompt over the profile's max_length with a 400 that says so.
schemas = [s for s in tool_schemas() if s["function"]["name"] == "text_formatter"]
tool_request = "Format the text to width 21, indent 4: Warsaw gets a new blender today."
messages = [{"role": "user", "content": tool_request}]
forced = {"model": tool_model, "tools": schemas, "tool_choice": "required", "max_tokens": health["max_tokens"]}
for quote in (False, True):  # quote: the call's free text is a whole phrase of the request (notebook 05's quoting)
    reply = client.chat.completions.create(messages=messages, **forced, extra_body={"quote": quote})
    choice = reply.choices[0]
    written = [c.function.arguments for c in choice.message.tool_calls or []]
    print(f"{tool_model}, quote={quote} ->", choice.finish_reason, *written)
if choice.finish_reason == "length":  # rehearsal profiles answer only a few tokens: the call did not fit
    assert profile.rehearsal, choice
else:
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert json.loads(call.function.arguments)["text"] in tool_request  # quoted, whatever the adapter knows
    result = TOOL_FUNCTIONS[call.function.name](**json.loads(call.function.arguments))
    print(tr(en="tool result:", ru="результат инструмента:"), repr(result_text(result)[:80]))
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": result_text(result)},
    ]
    final = client.chat.completions.create(
        model=tool_model, messages=messages, tools=schemas, max_tokens=health["max_tokens"], extra_body={"quote": True}
    )  # quote after a tool result: once the answer repeats the result, it repeats it exactly
    answer_text = final.choices[0].message.content or ""
    print(tr(en="final answer:", ru="итоговый ответ:"), final.choices[0].finish_reason, repr(answer_text))
    print(
        tr(en="the answer holds the tool's result exactly:", ru="ответ содержит результат инструмента точно:"),
        result_text(result).strip() in answer_text,
    )

# %%
from pydantic import BaseModel


class Contact(BaseModel):
    """What `json_prompt` asks for."""

    name: str
    email: str


structured = client.chat.completions.create(
    model="json",
    messages=[{"role": "user", "content": json_prompt}],
    response_format={"type": "json_schema", "json_schema": {"name": "contact", "schema": Contact.model_json_schema()}},
    max_tokens=health["max_tokens"],
)
answer = structured.choices[0]
print(answer.finish_reason, repr(answer.message.content))
if answer.finish_reason == "length":  # rehearsal profiles answer only a few tokens: the object did not close
    assert profile.rehearsal, answer
else:
    contact = Contact.model_validate_json(answer.message.content)  # always parses: the schema shaped every token
    print(tr(en="parsed:", ru="разобрано:"), contact)
    assert list(json.loads(answer.message.content)) == ["name", "email"]

# %% [markdown]
# ## 5. Many requests at once: latency, throughput, and no cross-talk
#
# Now 16 requests spread over `json`, `coding`, `support` and `auto`, first **strictly one after another**,
# then **all at once** from 16 threads. While the concurrent requests wait, the worker packs them into a few
# mixed-adapter batches, so each request waits a little longer but the server finishes all of them much sooner.
#
# Then we look for cross-talk. Each concurrent answer is compared with the sequential answer to the same request
# **and** with the answers the other adapters give to that prompt (sequentially, the base too):
# - another adapter's answer is **cross-talk** — never allowed, on any profile;
# - on the fp32 CPU path every answer must equal its sequential answer;
# - on a GPU a batch of 16 and a batch of 1 run different fp16 kernels, so a near-tie can flip a token: such an
#   answer matches *no* adapter's answer — kernel noise, allowed for up to 20% of the requests (a CPU rehearsal,
#   full of near-ties, only prints its share).
#
# Cross-talk can only show on a prompt the adapters answer differently, so we count those requests too: with
# trained adapters that is most of them.

# %% [markdown] lang="ru"
# ## 5. Много запросов сразу: задержка, пропускная способность и никаких перекрёстных помех
#
# Теперь 16 запросов, распределённых между `json`, `coding`, `support` и `auto`: сначала **строго один за другим**,
# затем **все сразу** из 16 потоков. Пока параллельные запросы ждут, рабочий поток упаковывает их в несколько
# смешанных батчей адаптеров, так что каждый запрос ждёт чуть дольше, но сервер заканчивает их все гораздо раньше.
#
# Затем ищем перекрёстные помехи. Каждый параллельный ответ сравнивается с последовательным ответом на тот же запрос
# **и** с ответами, которые другие адаптеры дают на этот промпт (последовательно, включая базовую модель):
# - ответ другого адаптера — это **перекрёстные помехи**, недопустимые ни на каком профиле;
# - на пути fp32 на CPU каждый ответ обязан совпадать со своим последовательным ответом;
# - на GPU батч из 16 и батч из 1 выполняют разные ядра fp16, и почти равные варианты могут поменять токен: такой
#   ответ не совпадает *ни с одним* ответом адаптеров — это шум ядер, он допустим для не более чем 20% запросов
#   (CPU-репетиция, полная почти равных вариантов, только печатает свою долю).
#
# Перекрёстные помехи видны только на промпте, на который адаптеры отвечают по-разному, поэтому мы считаем и такие
# запросы: с обученными адаптерами это большинство.

# %%
traffic = [
    (name, p)
    for p in prompts + [examples("json", 1, "heldout", seed=9)[0].prompt]
    for name in (*COURSE_ADAPTERS, "auto")
]

start = time.perf_counter()
sequential = [ask(name, p) for name, p in traffic]
sequential_s = time.perf_counter() - start

start = time.perf_counter()
with ThreadPoolExecutor(max_workers=len(traffic)) as pool:
    concurrent = list(pool.map(lambda job: ask(*job), traffic))
concurrent_s = time.perf_counter() - start

from lessons_lib.evaluate import format_table

rows = []
for label, replies, seconds in (
    (tr(en="one at a time", ru="по одному"), sequential, sequential_s),
    (tr(en=f"{len(traffic)} at once", ru=f"{len(traffic)} сразу"), concurrent, concurrent_s),
):
    latencies = sorted(r["timing"]["latency_ms"] for r in replies)
    rows.append(
        {
            "requests": label,
            "total s": f"{seconds:.2f}",
            "req/s": f"{len(replies) / seconds:.1f}",
            "median latency ms": f"{latencies[len(latencies) // 2]:.0f}",
            "batches": str(sorted({r["timing"]["batch_size"] for r in replies})),
        }
    )
print(format_table(rows))
print(
    tr(
        en="throughput ratio (concurrent / sequential):",
        ru="отношение пропускной способности (параллельно / по одному):",
    ),
    f"{sequential_s / concurrent_s:.1f}x",
)
assert max(r["timing"]["batch_size"] for r in concurrent) > 1  # the worker really batched them

# %%
from lessons_lib.checks import min_agreement
from lessons_lib.serve.crosstalk import CROSS_TALK


def content(reply: dict) -> str:
    """The answer's text."""
    return reply["choices"][0]["message"]["content"]


traffic_prompts = [p for _, p in traffic]
answered_by = [r["adapter"] for r in sequential]  # named adapters, and what `auto` routed to
references = {(p, adapter): content(r) for p, adapter, r in zip(traffic_prompts, answered_by, sequential)}
references |= {(p, "base"): content(ask("base", p)) for p in dict.fromkeys(traffic_prompts)}
report = cross_talk_report([content(r) for r in concurrent], traffic_prompts, answered_by, references)
print(
    tr(en=f"{len(traffic)} at once vs one at a time:", ru=f"{len(traffic)} сразу против по одному:"),
    report.summary(),
)
assert [r["adapter"] for r in concurrent] == answered_by  # same adapters (auto routed the same way)
assert report.count(CROSS_TALK) == 0
if exact_kernels(profile) or expects_quality(profile):
    assert report.same_share >= min_agreement(profile)  # 100% on exact kernels, 80% on fp16 ones
    assert report.telling >= len(traffic) // 2, "the adapters answer alike: cross-talk would go unseen"
else:
    print(
        tr(
            en=f"rehearsal: {report.same_share:.0%} identical and {report.telling}/{len(traffic)} requests able to "
            "show cross-talk, printed, not asserted (quick-trained adapters on 4-bit tiny weights); section 1's "
            "logit check is what tells the adapters apart here",
            ru=f"репетиция: {report.same_share:.0%} совпадают, и {report.telling} из {len(traffic)} "
            f"{plural_ru(len(traffic), 'запроса', 'запросов', 'запросов')} "
            f"{plural_ru(report.telling, 'способен', 'способны', 'способны')} "
            "показать перекрёстные помехи; печатаем, не проверяем (наскоро обученные адаптеры на 4-битных весах "
            "tiny); здесь адаптеры различает проверка логитов из раздела 1",
        )
    )

# %% [markdown]
# The "batches" column is the batch sizes the requests were answered in: one at a time each request is a
# batch of 1; sent together they share a few mixed-adapter batches. The latency of a single request grows
# (it waits for its batch), while throughput — requests finished per second — grows more. On a GPU the
# gain is much larger, because a batch of 16 costs little more than a batch of 1.
#
# ## 6. Bad input gets a clear answer, and nothing breaks
#
# A server must refuse bad requests with a message that says what to do, and keep serving everyone else.
# (One more case is tested in `tests/test_serve.py`: when generation itself crashes, that request gets a 500
# with the error, the others in its batch are retried alone and answered, and the server keeps serving.)

# %% [markdown] lang="ru"
# Столбец "batches" — это размеры батчей, в которых отвечали на запросы: при запросах по одному каждый запрос — батч
# из 1; отправленные вместе, они делят несколько смешанных батчей адаптеров. Задержка отдельного запроса растёт
# (он ждёт свой батч), а пропускная способность — число запросов, завершённых в секунду, — растёт сильнее. На GPU
# выигрыш гораздо больше, потому что батч из 16 стоит ненамного дороже батча из 1.
#
# ## 6. Плохой ввод получает понятный ответ, и ничего не ломается
#
# Сервер должен отклонять плохие запросы сообщением, которое объясняет, что делать, и продолжать обслуживать остальных.
# (Ещё один случай проверяется в `tests/test_serve.py`: если падает сама генерация, этот запрос получает 500
# с текстом ошибки, остальные запросы из его батча повторяются по отдельности и получают ответ, а сервер продолжает
# работу.)


# %%
def status_and_message(body: dict) -> tuple[int, str]:
    response = httpx.post(f"{URL}/v1/chat/completions", json=body, timeout=60)
    return response.status_code, response.json()["error"]["message"]


hello = [{"role": "user", "content": "hello"}]
cases = {
    "unknown model": {"model": "legal", "messages": hello},
    "empty messages": {"model": "json", "messages": []},
    "prompt too long": {"model": "json", "messages": [{"role": "user", "content": "order kettle " * 1000}]},
    "path as adapter name": {"model": "../../etc/passwd", "messages": hello},
}
codes = {}
for case, body in cases.items():
    codes[case], message = status_and_message(body)
    print(f"{case:22s} -> {codes[case]}: {message[:110]}")
assert codes == {"unknown model": 404, "empty messages": 400, "prompt too long": 400, "path as adapter name": 400}
assert httpx.get(f"{URL}/health").json()["adapters"] == health["adapters"]  # nothing was loaded or lost

# %% [markdown]
# The command-line client does the same from a terminal: `python -m lessons_lib.serve ask "..." --adapter auto`.

# %% [markdown] lang="ru"
# Консольный клиент делает то же из терминала: `python -m lessons_lib.serve ask "..." --adapter auto`.

# %%
import subprocess
import sys

from lessons_lib.paths import REPO_DIR

cli = subprocess.run(
    [
        sys.executable,
        "-m",
        "lessons_lib.serve",
        "ask",
        prompts[1],
        "--adapter",
        "auto",
        "--url",
        URL,
        "--max-tokens",
        str(SHORT),
    ],
    capture_output=True,
    text=True,
    cwd=REPO_DIR,
)
print(cli.stdout)
assert cli.returncode == 0 and tr(en="answered by", ru="ответил") in cli.stdout

# %% [markdown]
# ## 7. Scale out: the same adapters on vLLM or LoRAX
#
# Our server is a teaching server: one process, batches formed every few milliseconds, Hugging Face
# `generate`. When a class outgrows one Colab GPU, move to a multi-LoRA server built for it. **vLLM**
# batches requests for different LoRA adapters together with custom kernels and continuous batching;
# **LoRAX** loads adapters on demand. Both read plain PEFT folders — exactly what our adapter store holds —
# and vLLM uses the same convention as our API: the request's `model` names the adapter. So the clients
# above keep working; only `base_url` changes. `--served-model-name base` makes `model="base"` mean the
# bare base there too; `auto` has no vLLM equivalent, so route on the client and send the chosen name.
# `--max-lora-rank` must hold the largest adapter rank (vLLM accepts 8, 16, 32, 64, ...).

# %% [markdown] lang="ru"
# ## 7. Масштабирование: те же адаптеры на vLLM или LoRAX
#
# Наш сервер учебный: один процесс, батчи формируются каждые несколько миллисекунд, `generate` из Hugging Face.
# Когда группе становится мало одного GPU в Colab, переходите на multi-LoRA-сервер, созданный для этого. **vLLM**
# объединяет в батчи запросы к разным LoRA-адаптерам с помощью специальных ядер и непрерывного батчинга (continuous
# batching); **LoRAX** загружает адаптеры по требованию. Оба читают обычные папки PEFT — ровно то, что лежит в нашем
# хранилище адаптеров, — а vLLM следует тому же соглашению, что и наш API: `model` в запросе называет адаптер. Поэтому
# клиенты выше продолжают работать; меняется только `base_url`. `--served-model-name base` делает так, что и там
# `model="base"` означает голую базовую модель; у `auto` нет аналога в vLLM, поэтому маршрутизируйте на клиенте и
# отправляйте выбранное имя. `--max-lora-rank` должен вмещать наибольший ранг адаптера (vLLM принимает 8, 16, 32, 64,
# ...).

# %%
import json

from peft import LoraConfig

from lessons_lib.serve.vllm import TOOL_CALLING_NOTE, VLLM_LORA_RANKS, handoff

plan = handoff(folders, profile.model_id, max_model_len=profile.max_length + profile.max_new_tokens)
print(tr(en="# vLLM (OpenAI-compatible server on port 8000)", ru="# vLLM (OpenAI-совместимый сервер на порту 8000)"))
print(plan["vllm"])
print(
    tr(
        en="\n# LoRAX (adapters load per request from the mounted store)",
        ru="\n# LoRAX (адаптеры загружаются под каждый запрос из подключённого хранилища)",
    )
)
print(plan["lorax"] + "\n")
ours, theirs = tr(en="our", ru="у нас"), tr(en="vLLM", ru="в vLLM")
for row in plan["mapping"]:
    print(
        f"{ours} model={row['our model']!r:10} {theirs} model={row['vllm model']!r:52} "
        f"LoRAX adapter_id={row['lorax adapter_id']!r}"
    )
for name, reason in plan["left_out"].items():
    print(tr(en=f"left out of vLLM: {name}: {reason}", ru=f"не передан в vLLM: {name}: {reason}"))
args = plan["vllm_args"]
modules = [json.loads(a) for a in args if a.startswith("{")]  # vLLM's JSON form: a ',' or '=' in a path is safe
assert [(m["name"], m["path"]) for m in modules] == [(n, str(folders[n].resolve())) for n in COURSE_ADAPTERS]
max_lora_rank = int(args[args.index("--max-lora-rank") + 1])
ranks = [LoraConfig.from_pretrained(folders[n]).r for n in COURSE_ADAPTERS]  # each adapter's own config
assert max_lora_rank in VLLM_LORA_RANKS and max_lora_rank >= max(ranks), (max_lora_rank, ranks)  # holds every rank
print("\n" + TOOL_CALLING_NOTE)

# %% [markdown]
# With vLLM running, the client code is the same as in section 4:
# `OpenAI(base_url="http://HOST:8000/v1", api_key="...").chat.completions.create(model="json", ...)`.
#
# ## 8. Stop the server cleanly
#
# `SIGINT` is Ctrl-C: uvicorn finishes the requests in flight, the engine's worker stops, the port closes.

# %% [markdown] lang="ru"
# Когда vLLM запущен, код клиента тот же, что в разделе 4:
# `OpenAI(base_url="http://HOST:8000/v1", api_key="...").chat.completions.create(model="json", ...)`.
#
# ## 8. Корректно останавливаем сервер
#
# `SIGINT` — это Ctrl-C: uvicorn завершает запросы, которые уже выполняются, рабочий поток движка останавливается,
# порт закрывается.

# %%
from lessons_lib.serve.process import port_is_open, stop_server

exit_code = stop_server(server, timeout=20)  # SIGINT; kill only if it hangs
port_open = port_is_open(URL)
print(
    tr(
        en=f"server exited with code {exit_code}; port {PORT} open: {port_open}",
        ru=f"сервер завершился с кодом {exit_code}; порт {PORT} открыт: {port_open}",
    )
)
assert server.poll() is not None and not port_open

# %% [markdown]
# ## Recap
# - PEFT's active adapter is global state: concurrent `set_adapter` + `generate` calls can answer with the
#   wrong adapter. Let one worker own the model and give every row its adapter with `adapter_names`.
# - A mixed batch equals one-adapter runs: exactly in fp32, within fp16 kernel noise on a GPU — and each row
#   stays nearest its own adapter. Batching concurrent requests raises throughput while each request waits a
#   little; cross-talk shows as *another adapter's* answer, noise as an answer no adapter gives.
# - `python -m lessons_lib.serve` serves `base`, every adapter and `auto` over an OpenAI-compatible API;
#   `httpx`, the `openai` client (`base_url=...`), the web page and the CLI all talk to it.
# - `tool_choice="required"` and `response_format` json_schema decode under the schema's grammar, so a call or an
#   answer always validates; a schema keyword the grammar cannot keep is a 400 that names it, never ignored.
#   `extra_body={"quote": True}` adds notebook 05's quoting: the call's text is yours, the answer repeats the result.
# - Bad input gets 4xx with a message that says what to do; a failed generation is a 500 for that request
#   only.
# - The adapters are plain PEFT folders: `vllm serve BASE --enable-lora --lora-modules '{"name": ...}' ...` serves
#   them with the same `model` = adapter mapping.
#
# ## Exercises
# 1. Start the server with `--window-ms 0` and with `--window-ms 50`, rerun section 5, and compare batch
#    sizes, median latency and throughput. What does the window trade?
# 2. Write a naive server handler that calls `set_adapter(name)` then `generate` from several threads
#    (without the engine). Send it the traffic of section 5 and count the cross-talk answers. Add a lock:
#    what happens to throughput?
# 3. Save one adapter to a local store (notebook 02/`lessons_lib.storage`), start the server with
#    `--adapters-dir` pointing at the store, and check that `/v1/models` lists it.
# 4. On a GPU runtime, install vLLM, run the generated command and point the `openai` client of section 4
#    at it. Which answers differ from ours, and why might they (kernels, dtype, sampling defaults)?
# 5. Give `Contact` an optional field (`phone: str | None = None`) and rerun the structured-output cell; then mark
#    `email` with `Field(json_schema_extra={"format": "email"})`. Which schema does the server take, which gets a
#    400, and what does the message tell you to do?
#
# ## Quiz

# %% [markdown] lang="ru"
# ## Итоги
# - Активный адаптер PEFT — глобальное состояние: параллельные вызовы `set_adapter` + `generate` могут ответить
#   не тем адаптером. Пусть моделью владеет один рабочий поток, а каждая строка получает свой адаптер через
#   `adapter_names`.
# - Смешанный батч даёт то же, что запуски с одним адаптером: точно в fp32, в пределах шума ядер fp16 на GPU, — и каждая
#   строка остаётся ближе всего к своему адаптеру. Объединение параллельных запросов в батчи повышает пропускную
#   способность, а каждый запрос ждёт немного дольше; перекрёстные помехи выглядят как ответ *другого адаптера*, шум —
#   как ответ, которого не даёт ни один адаптер.
# - `python -m lessons_lib.serve` обслуживает `base`, каждый адаптер и `auto` через OpenAI-совместимый API;
#   с ним работают `httpx`, клиент `openai` (`base_url=...`), веб-страница и CLI.
# - `tool_choice="required"` и `response_format` json_schema декодируются по грамматике схемы, поэтому вызов или ответ
#   всегда проходит проверку; ключевое слово схемы, которое грамматика не может соблюсти, — это 400 с его именем, а не
#   молчаливый пропуск. `extra_body={"quote": True}` добавляет цитирование из ноутбука 05: текст вызова — ваш, а
#   ответ повторяет результат.
# - Плохой ввод получает 4xx с сообщением, которое объясняет, что делать; неудачная генерация — это 500 только для
#   этого запроса.
# - Адаптеры — обычные папки PEFT: `vllm serve BASE --enable-lora --lora-modules '{"name": ...}' ...` обслуживает
#   их с тем же соответствием `model` = адаптер.
#
# ## Упражнения
# 1. Запустите сервер с `--window-ms 0` и с `--window-ms 50`, повторите раздел 5 и сравните размеры батчей,
#    медианную задержку и пропускную способность. Что даёт окно и чем за него приходится платить?
# 2. Напишите наивный обработчик сервера, который вызывает `set_adapter(name)`, а затем `generate` из нескольких
#    потоков (без движка). Отправьте ему трафик из раздела 5 и посчитайте ответы с перекрёстными помехами. Добавьте
#    блокировку: что происходит с пропускной способностью?
# 3. Сохраните один адаптер в локальное хранилище (ноутбук 02/`lessons_lib.storage`), запустите сервер с
#    `--adapters-dir`, указывающим на это хранилище, и проверьте, что `/v1/models` его перечисляет.
# 4. В среде выполнения с GPU установите vLLM, запустите сгенерированную команду и направьте на неё клиент `openai`
#    из раздела 4. Какие ответы отличаются от наших и почему так может быть (ядра, dtype, параметры сэмплирования по
#    умолчанию)?
# 5. Добавьте в `Contact` необязательное поле (`phone: str | None = None`) и перезапустите ячейку со структурированным
#    ответом; затем пометьте `email` через `Field(json_schema_extra={"format": "email"})`. Какую схему сервер
#    принимает, на какую отвечает 400 и что советует сообщение?
#
# ## Тест

# %%
from lessons_lib.quiz import show_quiz

show_quiz("06")

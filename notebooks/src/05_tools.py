# %% [markdown]
# # 05 — Tools: validated functions, a tool-calling loop, and an adapter that teaches a model to call them
#
# A language model cannot count characters or check an e-mail address reliably, but a ten-line Python
# function can. So we give the model **tools**: it writes a small JSON *call*, our code checks and runs
# it, and the model turns the result into an answer. In this notebook we build three tools with honest
# input checks, generate their JSON schemas from the code, write the loop that never crashes whatever
# the model writes, and train a LoRA adapter that teaches a model without native tool calling (our tiny
# model; TinyLlama or Mistral on a GPU) to call them. Finally the router from notebook 04 sends
# tool-style requests to that adapter, and a system prompt shows what words can and cannot do.

# %% [markdown] lang="ru"
# # 05 — Инструменты: проверенные функции, цикл вызова инструментов и адаптер, который учит модель их вызывать
#
# Языковая модель не умеет надёжно считать символы или проверять адрес e-mail, а функция на Python из десяти строк
# умеет. Поэтому мы даём модели **инструменты**: она пишет небольшой JSON-*вызов*, наш код проверяет и выполняет
# его, а модель превращает результат в ответ. В этом ноутбуке мы создадим три инструмента с честной проверкой
# входных данных, сгенерируем их JSON-схемы из кода, напишем цикл, который не падает, что бы ни написала модель,
# и обучим LoRA-адаптер, который учит вызывать инструменты модель без встроенной поддержки вызовов инструментов
# (нашу крошечную модель; TinyLlama или Mistral на GPU). В конце маршрутизатор из ноутбука 04 направит запросы
# на вызов инструментов к этому адаптеру, а системный промпт покажет, что словами сделать можно, а что нельзя.

# %% [markdown]
# ## Learning objectives
# - Write tools as typed Python functions with Google-style docstrings and input checks whose errors
#   say what to do; generate their JSON schemas with `transformers.utils.get_json_schema`.
# - Render tools into the prompt with the chat template (`apply_chat_template(..., tools=...)`), also on
#   templates without tool support (TinyLlama's) and strict ones (Mistral's: call ids, alternating turns),
#   and expose the same functions as LangChain tools.
# - Build a tool-calling loop: parse the call, validate it against the schema, execute, send the result
#   back as a `tool` message; report malformed calls, unknown tools and bad arguments; stop at a step limit.
# - Train a tool-use LoRA adapter with TRL and measure it against the base on held-out requests:
#   right tool, valid arguments, correct final answer.
# - Constrain decoding to the tools' schemas (`prefix_allowed_tokens_fn`) and tell what that fixes
#   (the form of a call) from what it cannot (the choice of tool, the copied text).
# - Route tool-style requests to the tool adapter and everything else to its domain adapter.
# - Tell *style by prompt* from *skill by adapter*.

# %% [markdown] lang="ru"
# ## Цели урока
# - Писать инструменты как типизированные функции Python с docstring в стиле Google и проверками входных данных,
#   ошибки которых объясняют, что делать; генерировать их JSON-схемы с помощью `transformers.utils.get_json_schema`.
# - Выводить инструменты в промпт через шаблон чата (`apply_chat_template(..., tools=...)`), в том числе для
#   шаблонов без поддержки инструментов (TinyLlama) и строгих шаблонов (Mistral: id вызовов, чередование реплик),
#   и предоставлять те же функции как инструменты LangChain.
# - Построить цикл вызова инструментов: разобрать вызов, проверить его по схеме, выполнить, вернуть результат
#   сообщением `tool`; сообщать о некорректных вызовах, неизвестных инструментах и неверных аргументах; остановиться
#   на пределе шагов.
# - Обучить LoRA-адаптер для работы с инструментами с помощью TRL и сравнить его с базовой моделью на отложенных
#   запросах: правильный инструмент, корректные аргументы, верный итоговый ответ.
# - Ограничить декодирование схемами инструментов (`prefix_allowed_tokens_fn`) и отличать то, что это исправляет
#   (форму вызова), от того, что не может исправить (выбор инструмента, скопированный текст).
# - Направлять запросы на вызов инструментов к адаптеру инструментов, а всё остальное — к адаптеру его предметной
#   области.
# - Отличать *стиль с помощью промпта* от *навыка с помощью адаптера*.

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
TOOL_STEPS = None  # steps to train a tool adapter when none is found; None = the profile's quick_train_steps

# %%
from lessons_lib.lesson import setup_lesson

lesson = setup_lesson("05", profile=PROFILE, use_drive=USE_DRIVE, hub_namespace=HUB_NAMESPACE)

# %% [markdown]
# What this lesson keeps on the GPU at its peak (t4/7b profiles; one base at a time — each model is freed
# before the next one is loaded), and the three domain adapters that section 6 routes to. A fresh runtime
# finds them in the work dir, on Drive or on the Hub — or trains a quick version right here, saying so.

# %% [markdown] lang="ru"
# Ниже — сколько памяти GPU этот урок занимает в пике (профили t4/7b; в памяти одна базовая модель за раз: каждая
# освобождается до загрузки следующей), а затем поиск трёх адаптеров предметных областей, между которыми
# маршрутизирует раздел 6. Новая среда выполнения находит их в рабочей папке, на Google Диске или в Hugging Face Hub —
# или быстро обучает их прямо здесь и сообщает об этом.

# %%
import warnings

from lessons_lib import budget
from lessons_lib.adapters import COURSE_ADAPTERS, course_artifacts
from lessons_lib.i18n import plural_ru, tr  # printed text in the notebook's language (LESSONS_LANG)
from lessons_lib.lesson import plan_quick_training

print(budget.memory_plan(lesson.profile, "05"))
# What is found nowhere and so trained in this notebook (the tool adapter in section 5), with the estimated time.
plan_quick_training(lesson, (*COURSE_ADAPTERS, "tools"), {"tools": TOOL_STEPS or lesson.profile.quick_train_steps})
folders = course_artifacts(lesson)  # json, coding, support: shipped / work dir / Drive / Hub, or trained here

# %% [markdown]
# ## 1. Three tools, and errors that say what to do
#
# The tools come from the original homework: `text_formatter` wraps text to a width with an indent,
# `template_generator` fills a template (an instruction/input/response prompt, an e-mail, a bug report,
# meeting notes), and `content_validator` checks a text against rules. Open
# `lessons_lib/tools/functions.py`: each is a plain function with **type hints** and a **docstring with an
# `Args:` section** — both will become the schema the model sees.

# %% [markdown] lang="ru"
# ## 1. Три инструмента и ошибки, которые объясняют, что делать
#
# Инструменты взяты из исходного домашнего задания: `text_formatter` переносит текст по заданной ширине с отступом,
# `template_generator` заполняет шаблон (промпт вида instruction/input/response, e-mail, отчёт об ошибке,
# протокол встречи), а `content_validator` проверяет текст по правилам. Откройте
# `lessons_lib/tools/functions.py`: каждый инструмент — обычная функция с **аннотациями типов** и **docstring
# с разделом `Args:`** — и то и другое станет схемой, которую видит модель.

# %%
import inspect

from lessons_lib.tools.functions import TOOLS, ToolError, content_validator, template_generator, text_formatter

print(inspect.getsource(text_formatter).split('"""')[1])
print(text_formatter("Adapters are small files that change what one base model does.", width=24, indent=2))
print()
print(template_generator("bug_report", "login page crashes"))
print()
print(content_validator("anna.smith@example.com", ["is_email", "max_length:20"]))

# %% [markdown]
# A model will call these with wrong arguments. Each bad input raises the tool's own `ToolError` with a
# message that names the problem *and the fix* — the same message will be sent back to the model.

# %% [markdown] lang="ru"
# Модель будет вызывать их с неверными аргументами. Любой плохой ввод порождает собственную ошибку инструмента
# `ToolError` с сообщением, которое называет проблему *и способ её исправить*, — то же сообщение получит и модель.

# %%
bad_calls = {
    "width 0": lambda: text_formatter("some text", width=0),
    "indent ≥ width": lambda: text_formatter("some text", width=4, indent=4),
    "unknown template": lambda: template_generator("poem", "spring"),
    "unknown rule": lambda: content_validator("hello", ["is_polite"]),
    "rule without limit": lambda: content_validator("hello", ["max_length"]),
}
errors = {}
for label, call in bad_calls.items():
    try:
        call()
    except ToolError as err:
        errors[label] = str(err)
        print(f"{label:18s} → {err}")

# %%
assert len(errors) == len(bad_calls)
assert "instruction, email, bug_report, meeting_notes" in errors["unknown template"]
assert "non_empty" in errors["unknown rule"] and "e.g. width=40" in errors["width 0"]
assert all(
    len(line) <= 24
    for line in text_formatter(
        "Adapters are small files that change what one base model does.", width=24, indent=2
    ).split("\n")
)

# %% [markdown]
# The tests in `tests/test_tools_functions.py` go further with *property tests* (hypothesis): for
# thousands of random texts, no formatted line exceeds the width and every word survives in order; the
# validator agrees with independently written reference checks; every invalid argument raises `ToolError`.
#
# ## 2. Schemas from code, and tools in the prompt
#
# `get_json_schema` reads the signature and the docstring and writes the JSON schema that chat templates
# and APIs expect. `Literal[...]` becomes an `enum`, `list[str]` an array of strings, arguments without
# a default are `required`.

# %% [markdown] lang="ru"
# Тесты в `tests/test_tools_functions.py` идут дальше: это *тесты свойств* (hypothesis). На тысячах случайных текстов ни
# одна отформатированная строка не превышает заданную ширину, и каждое слово сохраняется на своём месте; валидатор
# согласуется с независимо написанными эталонными проверками; каждый недопустимый аргумент вызывает `ToolError`.
#
# ## 2. Схемы из кода и инструменты в промпте
#
# `get_json_schema` читает сигнатуру и docstring и пишет JSON-схему, которую ожидают шаблоны чата
# и API. `Literal[...]` превращается в `enum`, `list[str]` — в массив строк, аргументы без значения
# по умолчанию попадают в `required`.

# %%
import json

from transformers.utils import get_json_schema

schemas = [get_json_schema(fn) for fn in TOOLS.values()]
print(json.dumps(schemas[1], indent=1, ensure_ascii=False))

# %% [markdown]
# The chat template decides how tools appear in the prompt, and templates differ a lot:
#
# - our tiny model's template lists the tool names in a system line, renders an assistant's `tool_calls`
#   as `{"tool": NAME, "arguments": {...}}` and a tool's result as a `tool` turn;
# - TinyLlama-1.1B-Chat (the t4 profile) has a Zephyr template that knows only system, user and assistant:
#   it silently drops `tools=`, the calls and the `tool` messages — the model would never see a tool or a result;
# - Mistral-7B-Instruct-v0.3 (7b) prints every schema after `[AVAILABLE_TOOLS]`, but raises unless every call
#   carries a 9-character alphanumeric id and user and assistant turns alternate.
#
# So we never call `apply_chat_template` on a tool conversation directly. `lessons_lib.models.chat_text`
# first asks `chat_format.prepare` to probe what the template renders by itself and spell out the rest:
# the tools as signatures in the system turn, calls as their JSON, results as a user turn
# "Tool result (NAME): …", ids on every call, consecutive user turns merged. Where the template renders
# everything (the tiny one), it changes nothing:

# %% [markdown] lang="ru"
# То, как инструменты попадают в промпт, решает шаблон чата, а шаблоны сильно различаются:
#
# - шаблон нашей крошечной модели перечисляет имена инструментов в системной строке, выводит `tool_calls`
#   ассистента как `{"tool": NAME, "arguments": {...}}`, а результат инструмента — как реплику `tool`;
# - у TinyLlama-1.1B-Chat (профиль t4) шаблон Zephyr, который знает только system, user и assistant:
#   он молча отбрасывает `tools=`, вызовы и сообщения `tool` — модель никогда не увидела бы ни инструмента, ни
#   результата;
# - Mistral-7B-Instruct-v0.3 (7b) печатает каждую схему после `[AVAILABLE_TOOLS]`, но выдаёт ошибку, если у какого-либо
#   вызова нет буквенно-цифрового id из 9 символов или реплики пользователя и ассистента не чередуются.
#
# Поэтому мы никогда не вызываем `apply_chat_template` для диалога с инструментами напрямую.
# `lessons_lib.models.chat_text`
# сначала просит `chat_format.prepare` выяснить, что шаблон выводит сам, а остальное прописать явно:
# инструменты — как сигнатуры в системной реплике, вызовы — как их JSON, результаты — как реплику пользователя
# "Tool result (NAME): …", id — у каждого вызова, идущие подряд реплики пользователя — объединены. Там, где шаблон
# выводит всё сам (у крошечной модели), ничего не меняется:

# %%
from lessons_lib.chat_format import capabilities
from lessons_lib.models import chat_text, load_base, load_tokenizer

profile = lesson.profile
tok = load_tokenizer(profile)
wrapped = text_formatter("one base, many adapters", width=12)
example_chat = [
    {"role": "user", "content": "Wrap this to 12 characters: one base, many adapters"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "type": "function",
                "function": {"name": "text_formatter", "arguments": {"text": "one base, many adapters", "width": 12}},
            }
        ],
    },
    {"role": "tool", "content": wrapped},
]
print(capabilities(tok), "\n")
rendered = chat_text(tok, example_chat, tools=schemas)
print(rendered)

# %%
assert all(name in rendered for name in TOOLS), "every tool must be in the prompt"
assert '"width": 12' in rendered and wrapped in rendered, "the call and the tool's result must reach the model"
if capabilities(tok).native:  # a template that renders tools, calls and results itself is left alone
    assert rendered == tok.apply_chat_template(example_chat, tools=schemas, tokenize=False, add_generation_prompt=True)
assert schemas[1]["function"]["parameters"]["properties"]["template_type"]["enum"][0] == "instruction"

# %% [markdown]
# ### The same tools in LangChain
#
# The original course declared tools with LangChain's `@tool`. When `langchain_core` is installed, the
# same functions become `StructuredTool`s: LangChain parses the same Google docstring, and our
# `ToolError` is turned into a `ToolException`, so a bad call comes back as a message instead of an
# exception (`handle_tool_error=True`).

# %% [markdown] lang="ru"
# ### Те же инструменты в LangChain
#
# В исходном курсе инструменты объявлялись декоратором `@tool` из LangChain. Если установлен `langchain_core`,
# те же функции становятся объектами `StructuredTool`: LangChain разбирает тот же docstring в стиле Google, а наша
# `ToolError` превращается в `ToolException`, так что плохой вызов возвращается сообщением, а не
# исключением (`handle_tool_error=True`).

# %%
from lessons_lib.tools.langchain import langchain_available, langchain_tools

if langchain_available():
    lc_tools = {t.name: t for t in langchain_tools()}
    print(lc_tools["text_formatter"].invoke({"text": "a b c d e f", "width": 5}))
    print(lc_tools["text_formatter"].invoke({"text": "a b c", "width": 0}))
    assert lc_tools["text_formatter"].invoke({"text": "a b c", "width": 0}).startswith("error: width must be")
    assert lc_tools["content_validator"].args["rules"]["type"] == "array"
else:
    print(
        tr(
            en="langchain_core is not installed: `pip install langchain-core` to try the LangChain versions.",
            ru="langchain_core не установлен: `pip install langchain-core`, чтобы попробовать версии для LangChain.",
        )
    )

# %% [markdown]
# ## 3. The tool-calling loop
#
# The loop in `lessons_lib/tools/loop.py` is short enough to read in one go:
#
# 1. ask the model for a reply to the conversation (tools listed in the prompt);
# 2. a reply that does not start with `{` is the **final answer** — stop;
# 3. otherwise **parse** it (`parse_call`) and **validate** it against the schema (`validate_call`):
#    tool exists, required arguments present, no unknown names, types and enums right;
# 4. **execute** it; a `ToolError` (or any crash) becomes a result starting with `error:`;
# 5. append the call and a `tool` message with the result (or the error) and go back to 1 —
#    at most `max_steps` times.
#
# Before a real model, a scripted one that makes every mistake once: malformed JSON, an unknown tool,
# a misspelled argument, an argument the tool rejects — then a good call and an answer.

# %% [markdown] lang="ru"
# ## 3. Цикл вызова инструментов
#
# Цикл в `lessons_lib/tools/loop.py` достаточно короткий, чтобы прочитать его целиком:
#
# 1. запросить у модели ответ на диалог (инструменты перечислены в промпте);
# 2. ответ, который не начинается с `{`, — это **итоговый ответ**: остановиться;
# 3. иначе **разобрать** его (`parse_call`) и **проверить** по схеме (`validate_call`):
#    инструмент существует, обязательные аргументы на месте, неизвестных имён нет, типы и значения enum верны;
# 4. **выполнить** его; `ToolError` (или любой сбой) превращается в результат, начинающийся с `error:`;
# 5. добавить вызов и сообщение `tool` с результатом (или ошибкой) и вернуться к шагу 1 —
#    не более `max_steps` раз.
#
# Прежде чем брать настоящую модель, возьмём заскриптованную, которая совершает каждую ошибку по разу: некорректный
# JSON,
# неизвестный инструмент, опечатка в имени аргумента, аргумент, который инструмент отвергает, — а затем правильный
# вызов и ответ.

# %%
from lessons_lib.tools.calls import call_text
from lessons_lib.tools.loop import run_tool_loop


class ScriptedModel:
    """A stand-in model that replies from a list and records what it was shown."""

    def __init__(self, replies):
        self.replies, self.seen = list(replies), []

    def __call__(self, messages):
        self.seen.append(messages)
        return self.replies.pop(0)


clumsy = ScriptedModel(
    [
        '{"tool": "text_formatter", "arguments": {"text": "hello"',  # malformed JSON
        '{"tool": "summarize", "arguments": {"text": "hello"}}',  # unknown tool
        '{"tool": "text_formatter", "arguments": {"txt": "hello world", "width": 8}}',  # wrong argument name
        call_text("text_formatter", {"text": "hello world", "width": 4, "indent": 4}),  # the tool: no room left
        call_text("text_formatter", {"text": "hello world", "width": 8}),
        "Here is the formatted text:\nhello\nworld",
    ]
)
run = run_tool_loop(clumsy, "Wrap 'hello world' to 8 characters.", max_steps=8)
print(run.transcript())

# %%
kinds = [e.kind for e in run.events]
assert kinds == ["error", "error", "error", "call", "error", "call", "result", "answer"]
assert all(m["content"].startswith("error: ") for m in clumsy.seen[4] if m["role"] == "tool")
assert run.answer.endswith("hello\nworld")

stubborn = ScriptedModel([call_text("text_formatter", {"text": "again", "width": 9})] * 10)
endless = run_tool_loop(stubborn, "Keep going", max_steps=3)
print(endless.events[-1])
assert endless.answer is None and endless.events[-1].kind == "step_limit" and len(stubborn.seen) == 3

# %% [markdown]
# Every mistake came back to the model as a `tool` message it can read and fix, and the learner sees it in
# the event list. A model that never stops calling is cut off by the step limit.
#
# ## 4. Does the base model call tools?
#
# `ModelChat` turns a real model into the `chat(messages) -> reply` the loop needs: it renders the
# conversation and its tools with `chat_text` and generates greedily.

# %% [markdown] lang="ru"
# Каждая ошибка вернулась к модели сообщением `tool`, которое она может прочитать и исправить, а учащийся видит её
# в списке событий. Модель, которая никак не перестаёт вызывать инструменты, останавливает предел шагов.
#
# ## 4. Вызывает ли базовая модель инструменты?
#
# `ModelChat` превращает настоящую модель в функцию `chat(messages) -> reply`, которая нужна циклу: она выводит
# диалог и его инструменты через `chat_text` и генерирует жадно.

# %%
from lessons_lib.checks import expects_quality
from lessons_lib.tools.data import tool_examples
from lessons_lib.tools.loop import ModelChat

# A call that copies a sentence takes up to ~128 tokens; a rehearsal (no quality claims) keeps its profile's budget.
MAX_NEW = max(profile.max_new_tokens, 128) if expects_quality(profile) else profile.max_new_tokens
base = load_base(profile)
demo = tool_examples(3, "heldout", seed=3)
for ex in demo:
    demo_run = run_tool_loop(ModelChat(base, tok, schemas, max_new_tokens=MAX_NEW), ex.request, max_steps=2)
    print(f"{tr(en='request', ru='запрос')}: {ex.request}\n" + demo_run.transcript() + "\n")

# %% [markdown]
# The tiny base model has never seen a tool call: it answers in prose (or in whatever format it knows) and
# never touches a tool. A chat model may try — Mistral v0.3 was even trained for tool calling, in its own
# `[TOOL_CALLS]` format that `parse_call` also reads — but it does not reliably pick *our* tools with valid
# arguments. The skill has to be *learned* — a job for an adapter.
#
# ## 5. A tool-use adapter
#
# The training data (`lessons_lib/tools/data.py`) are synthetic requests in English and Russian — wrap
# this text, make a bug-report template, check this e-mail — each with its gold call, the tool's real
# result and a final answer. Every request gives **two** prompt–completion rows: request → call, and
# request + call + tool result → final answer. The `tools` column carries the schemas, and TRL passes it
# to the chat template. TRL renders the rows with the template itself, so for a template that cannot show
# tools or results (TinyLlama's) `tool_sft_rows(..., tokenizer=tok)` writes them into the rows exactly as
# `chat_text` does: the adapter trains on the very text the loop will show it. (`ANSWER_EVERY` sets which
# requests also get their answer row; the shipped recipe gives every request one.)
#
# Three splits keep the measurement honest. **Held-out** requests use other phrasings and other names,
# cities and products than training. **Dev** requests use phrasings of their own and made-up names: the
# recipe (steps, rank, data mix) was chosen on dev, and held-out only measures it. And half of the training
# requests for the two text tools are *composed* — opener + the tool's verb + a reference to the text +
# an ending, with the **same** openers and references for both tools — so filler words like "the text"
# or "please" carry no signal and only the verb and its parameters name the tool. Without that, the
# adapter learned that "the text" means `content_validator` and sent "Format the text…" there.
#
# Templates teach a model templates. People write "can you make this fit a 40-column terminal?", put the text first
# and the instruction after it, or name the tool itself. So half of the training requests are composed in many
# **voices** (`lessons_lib/tools/voices.py`): an opener, a verb, the parameters said several ways and in either order
# ("at 30 characters, no indent", "a 2-space indent and to 40 columns"), the text after a colon, on its own line, in
# quotes or before the instruction, sometimes two sentences of it (the full stops belong to the text), numbers past
# the templates' ranges (widths up to 90), now and then the tool's or the rules' own names. None starts like a
# held-out phrasing. A fourth set chose this: `assets/tools/dev_handwritten.jsonl`, 90 requests written by hand,
# longer and more varied than the templates, written without looking at the held-out ones (`python -m
# lessons_lib.tools evaluate --data dev-handwritten --tool-choice required --quote`). There the voices raised the
# right tool from 0.68 to 0.74, exact arguments from 0.12 to 0.22 and final answers from 0.18 to 0.27; that adapter,
# decoded as below (room for long quotes, the request's own numbers, whole texts), scored 0.74 / 0.40 / 0.43: still
# far from the templates' figures, which is the honest size of the gap. How much of that is noise? A rebuild that
# changed 13 of the 6,000 requests moved these figures by up to 0.06, so read differences that small as none. Long
# texts with commas, notes with trailing spaces and texts inside the question ("is 'a@b' a real address?") on top of
# the voices did no better here (0.73 / 0.21 / 0.24) and took a third longer to train, so they are not in the recipe.
# Retried with the decoding below, long texts with commas taught the calls not to stop at a comma but cost template
# types and rule lists elsewhere (0.76 / 0.36 / 0.40 against 0.74 / 0.29 / 0.33 then; with long topics and quoted
# texts too, 0.80 / 0.36 / 0.40): the whole-text rule below gets those texts right without retraining, so the recipe
# stayed.
#
# What did help was variety where dev showed the adapter had seen too little (`lessons_lib/tools/texts.py`,
# `topics.py`). It had checked only `first.last@example.com`, one JSON shape and one two-line note, so asked whether
# `"[1, 2, 3,]"` parses as JSON it quoted "parses as JSON". Now half the train texts to check (and so of the
# formatter's mixed texts) are records in JSON or Python notation, lists, notes of several lines with headings,
# bullets or trailing spaces, settings, e-mail addresses of many shapes (some broken) or one-word replies; half the
# voiced topics are whole phrases with a verb and a condition ("the login form freezes after the update"), attached in
# more ways ("We're discussing …", "subject line '…'"). They come from a side stream (`lessons_lib.data.side_stream`),
# so every other request stays as it was and a comparison sees only them. The texts alone lifted the validator (exact
# on 3 -> 7 of its 30 dev requests) and upset the template types (13 -> 4 of 30); with the template generator's calls
# in the warm-up too (below), dev reads 0.86 / 0.44 / 0.49 — the shipped recipe (the manifest's `dev_handwritten_*`).
# The same with word counts up to 40 in the rules: 0.87 / 0.46 / 0.44, a call more exact and four final answers fewer,
# not kept. Mind what dev can still say: these texts and topics were written after reading its failures, some with its
# words ("faster sync", "a site visit"), so dev now flatters this recipe. The hand-written held-out requests (below),
# which every build scores but which were not read to write these texts, are the fair measure, and they moved less:
# exact arguments 0.57 -> 0.60, final answers 0.60 -> 0.62, the right tool 0.97 -> 0.92.

# %% [markdown] lang="ru"
# Крошечная базовая модель никогда не видела вызова инструмента: она отвечает прозой (или в том формате, который
# знает) и ни разу не обращается к инструменту. Чат-модель может попытаться — Mistral v0.3 даже обучали вызывать
# инструменты в собственном формате `[TOOL_CALLS]`, который `parse_call` тоже читает, — но она не выбирает надёжно
# *наши* инструменты с корректными аргументами. Этот навык нужно *выучить* — работа для адаптера.
#
# ## 5. Адаптер для работы с инструментами
#
# Обучающие данные (`lessons_lib/tools/data.py`) — синтетические запросы на английском и русском (перенеси
# этот текст, сделай шаблон отчёта об ошибке, проверь этот e-mail), у каждого — эталонный вызов, настоящий результат
# инструмента и итоговый ответ. Каждый запрос даёт **две** строки «промпт — ответ»: запрос → вызов и
# запрос + вызов + результат инструмента → итоговый ответ. Столбец `tools` содержит схемы, и TRL передаёт их
# в шаблон чата. TRL сам выводит строки через шаблон, поэтому для шаблона, который не умеет показывать
# инструменты и результаты (TinyLlama), `tool_sft_rows(..., tokenizer=tok)` записывает их в строки ровно так, как это
# делает `chat_text`: адаптер учится на том самом тексте, который ему покажет цикл. (`ANSWER_EVERY` задаёт, какие
# запросы получают ещё и строку с ответом; в поставляемом рецепте её получает каждый запрос.)
#
# Честность измерения обеспечивают три разбиения. **Отложенные** (held-out) запросы используют другие формулировки и
# другие
# имена, города и товары, чем обучающие. **Dev**-запросы используют собственные формулировки и выдуманные имена:
# рецепт (шаги, ранг, состав данных) выбирали на dev, а отложенная выборка его только измеряет. А половина
# обучающих запросов для двух текстовых инструментов *составные*: вступление + глагол инструмента + ссылка на текст +
# концовка, причём вступления и ссылки **одни и те же** для обоих инструментов, — так что слова-заполнители вроде
# "the text" или "please" не несут сигнала, и инструмент называют только глагол и его параметры. Без этого
# адаптер усвоил, что "the text" означает `content_validator`, и отправлял туда "Format the text…".
#
# На шаблонах модель учится шаблонам. Люди пишут «уложи это в терминал на 40 столбцов», ставят текст перед
# просьбой или называют сам инструмент. Поэтому половина обучающих запросов составлена **разными голосами**
# (`lessons_lib/tools/voices.py`): вступление, глагол, параметры, сказанные по-разному и в любом порядке («по ширине
# 30, без отступа», «отступ в 2 пробела и 40 колонок»), текст после двоеточия, на отдельной строке, в кавычках или
# перед просьбой, иногда из двух предложений (точки принадлежат тексту), числа за пределами диапазонов шаблонов
# (ширина до 90), изредка собственные имена инструмента или правил. Ни один такой запрос не начинается как
# отложенная формулировка. Выбирали это на четвёртом наборе: `assets/tools/dev_handwritten.jsonl` — 90 запросов,
# написанных вручную, длиннее и разнообразнее шаблонов, и написанных без оглядки на отложенные
# (`python -m lessons_lib.tools evaluate --data dev-handwritten --tool-choice required --quote`). На нём голоса
# подняли верный инструмент с 0.68 до 0.74, точные аргументы — с 0.12 до 0.22, итоговые ответы — с 0.18 до 0.27;
# тот же адаптер при декодировании, как ниже (место для длинных цитат, числа из самого запроса, тексты целиком), даёт
# 0.74 / 0.40 / 0.43: до цифр на шаблонах ещё далеко, и это честный размер разрыва.
# Сколько здесь шума?
# Пересборка, изменившая 13 из 6000 запросов, сдвинула эти цифры до 0.06, так что столь малые различия читайте как
# отсутствие различий. Длинные тексты с запятыми, заметки с пробелами в конце строк и тексты внутри вопроса («похоже
# ли 'a@b' на адрес?») поверх голосов здесь лучше не сделали (0.73 / 0.21 / 0.24) и учились на треть дольше, поэтому
# в рецепт они не вошли. С декодированием, как ниже, длинные тексты с запятыми отучили вызовы останавливаться на
# запятой, но стоили типов шаблонов и списков правил в других запросах (0.76 / 0.36 / 0.40 против тогдашних
# 0.74 / 0.29 / 0.33; вместе с длинными темами и текстами в кавычках — 0.80 / 0.36 / 0.40): правило «текст целиком»
# ниже исправляет те же тексты без переобучения, поэтому рецепт остался прежним.
#
# Помогло другое — разнообразие там, где dev показал, что адаптер видел слишком мало (`lessons_lib/tools/texts.py`,
# `topics.py`). Проверять он учился только `first.last@example.com`, одну форму JSON и одну заметку из двух строк,
# поэтому на вопрос, разбирается ли `"[1, 2, 3,]"` как JSON, цитировал «parses as JSON». Теперь половина обучающих
# текстов для проверки (а значит, и смешанных текстов форматтера) — записи в нотации JSON или Python, списки, заметки
# из нескольких строк с заголовками, пунктами или пробелами в конце строк, настройки, адреса почты самых разных видов
# (некоторые сломаны) или ответы из одного слова; половина тем в запросах разными голосами — целые фразы с глаголом и
# условием («форма входа зависает после обновления»), присоединённые новыми способами («Обсуждаем …», «Задача: …»). Их
# берут из побочного потока (`lessons_lib.data.side_stream`), так что все остальные запросы остаются прежними и
# сравнение видит только их. Одни тексты подняли валидатор (точные вызовы на 3 -> 7 из его 30 запросов dev) и сбили
# типы шаблонов (13 -> 4 из 30); с вызовами генератора шаблонов в разминке (ниже) dev даёт 0.86 / 0.44 / 0.49 — это
# поставляемый рецепт (`dev_handwritten_*` в манифесте). То же с числом слов в правилах до 40: 0.87 / 0.46 / 0.44, на
# один точный вызов больше и на четыре верных итоговых ответа меньше, — не оставили. Помните, что dev теперь может
# сказать: эти тексты и темы писали, прочитав его ошибки, иногда его же словами («faster sync», «a site visit»), так
# что dev теперь льстит этому рецепту. Честная мера — отложенные запросы, написанные вручную (ниже): их оценивает
# каждая сборка, но их не читали, когда писали эти тексты, и сдвинулись они меньше: точные аргументы 0.57 -> 0.60,
# итоговые ответы 0.60 -> 0.62, верный инструмент 0.97 -> 0.92.

# %%
from lessons_lib.tools.adapter import ANSWER_EVERY, STEPS, TRAIN_REQUESTS, WARM_STEPS, WARM_TOOLS
from lessons_lib.tools.data import tool_sft_rows

rows = tool_sft_rows(TRAIN_REQUESTS, "train", answer_every=ANSWER_EVERY, tokenizer=tok)
print(len(rows), tr(en="rows; a call row and an answer row:", ru="строк; строка с вызовом и строка с ответом:"))
for row in rows[:2]:
    print(" prompt:    ", [m["role"] for m in row["prompt"]], "| completion:", row["completion"][0]["content"][:90])

# %% [markdown]
# The training itself is notebook 01's recipe: `LoraConfig`, `prepare_model_for_kbit_training` on a 4-bit
# base, `get_peft_model`, `SFTConfig` + `SFTTrainer`. If this profile's tool adapter already exists — on
# the tiny profile the full run ships in `assets/adapters/tools` (rebuilt deterministically by
# `python -m lessons_lib.tools build-adapter`); on a GPU profile an earlier run of this notebook saved it to
# the work dir, Drive or the Hub — we run only a few steps to watch the loss fall. Otherwise this cell
# trains the adapter and saves it where the next run will find it. It takes the profile's quick-training
# budget (`TOOL_STEPS` in the parameters cell changes it): 60 steps on t4, 40 on 7b. Chat models already
# know JSON and learn the call format from far fewer examples than the tiny model needed, and the full
# `profile.train_steps` would cost hours on 7b — the cell prints its time estimate before it starts. A CPU
# rehearsal of a GPU profile runs the same code for a handful of steps, one micro-batch each.
#
# `max_length` comes from the rows: tool definitions make them long on some templates (Mistral prints
# every schema as JSON), and a row cut at `max_length` would lose the very answer it should teach.
#
# One tiny-profile detail matters a lot: the tiny model has never seen text like `{"tool": ...`, and
# its output layer (`lm_head`) keeps predicting its old words. With LoRA on the linear layers alone the
# loss was still 1.7 after 150 steps and the calls were gibberish; letting the adapter also train a copy
# of `lm_head` (`modules_to_save`) brought the loss there in about 40 steps. The price: the adapter
# carries a full copy of that layer (1.5 MB instead of 0.5 MB; an untied copy, since the tiny model ties
# `lm_head` to its input embeddings — PEFT warns about that, and we silence the warning below). On a
# 32k-vocabulary GPU model that copy would be hundreds of MB, and those models already know JSON — so GPU
# profiles use plain LoRA (`tool_recipe` picks the settings per profile).
#
# A second detail is a small **curriculum**. Trained on the mix alone, the tiny adapter barely learned the
# validator's rule names (`non_empty`, `valid_json`, ...): scored on its own *training* requests, it named the
# first rule right about a third of the time. The mix shows each rule name too few times for this base. So
# the shipped adapter first trains `WARM_STEPS` steps on the calls of `WARM_TOOLS` alone
# (`train_tool_adapter(..., warm_steps=...)`), then the whole mix starts from there. On the dev requests 600 steps
# on the validator raised exact arguments from 0.56 to 0.81 (before the voices). On hand-written requests the gain
# was smaller (exact arguments with quoting 0.40 -> 0.48) and the right tool slipped a little (0.90 -> 0.87 with
# `tool_choice="required"`): a curriculum is a trade, measured like any other recipe change. The template types
# proved just as fragile (a change to the validator's texts alone took them from 13 to 4 exact of 30 dev
# requests), so the warm-up now covers the template generator's calls too, 900 steps: 14 of 30.

# %% [markdown] lang="ru"
# Само обучение — рецепт из ноутбука 01: `LoraConfig`, `prepare_model_for_kbit_training` на 4-битной
# базовой модели, `get_peft_model`, `SFTConfig` + `SFTTrainer`. Если адаптер инструментов для этого профиля уже есть
# (для профиля tiny полный прогон поставляется в `assets/adapters/tools` и детерминированно пересобирается командой
# `python -m lessons_lib.tools build-adapter`; для GPU-профиля его сохранил в рабочую папку, на Google Диск или в
# Hugging Face Hub предыдущий запуск этого ноутбука), мы выполняем лишь несколько шагов, чтобы посмотреть, как падает
# функция потерь (loss). Иначе эта ячейка обучает адаптер и сохраняет его туда, где его найдёт следующий запуск. Число
# шагов берётся из бюджета быстрого обучения профиля (его меняет `TOOL_STEPS` в ячейке параметров): 60 шагов на t4, 40
# на 7b.
# Чат-модели уже знают JSON и усваивают формат вызова по гораздо меньшему числу примеров, чем понадобилось крошечной
# модели, а полный `profile.train_steps` занял бы на 7b несколько часов — перед стартом ячейка печатает оценку времени.
# CPU-репетиция GPU-профиля выполняет тот же код всего за несколько шагов, по одному микробатчу на шаг.
#
# `max_length` берётся из самих строк: в некоторых шаблонах определения инструментов делают строки длинными (Mistral
# печатает каждую схему в виде JSON), а строка, обрезанная по `max_length`, потеряла бы как раз тот ответ, которому
# должна учить.
#
# Одна деталь профиля tiny очень важна: крошечная модель никогда не видела текста вроде `{"tool": ...`, и
# её выходной слой (`lm_head`) продолжает предсказывать привычные ей слова. С LoRA только на линейных слоях
# функция потерь после 150 шагов всё ещё была 1.7, а вызовы — бессмыслицей; когда адаптеру разрешили обучать ещё и копию
# `lm_head` (`modules_to_save`), loss опустился до этого уровня примерно за 40 шагов. Цена: адаптер
# несёт полную копию этого слоя (1.5 MB вместо 0.5 MB). Это отдельная копия: у крошечной модели `lm_head` связан
# с входными эмбеддингами (tied weights), PEFT предупреждает об этом, и ниже мы отключаем это предупреждение. У
# GPU-модели со словарём 32k такая копия заняла бы сотни MB, а эти модели и так знают JSON, — поэтому GPU-профили
# используют обычную LoRA (`tool_recipe` выбирает настройки для каждого профиля).
#
# Вторая деталь — маленький **учебный план** (curriculum). Обученный только на общей смеси, крошечный адаптер почти
# не выучил имена правил валидатора (`non_empty`, `valid_json`, ...): даже на его собственных *обучающих* запросах
# первое правило было названо верно примерно в трети случаев. Смесь показывает каждое имя правила слишком мало раз
# для этой базовой модели. Поэтому поставляемый адаптер сначала `WARM_STEPS` шагов учится только на вызовах
# `WARM_TOOLS` (`train_tool_adapter(..., warm_steps=...)`), а затем с этого места начинается вся смесь. На запросах
# dev 600 шагов на валидаторе подняли долю точных аргументов с 0.56 до 0.81 (ещё до голосов). На запросах, написанных
# вручную, выигрыш меньше (точные аргументы с цитированием 0.40 -> 0.48), а верный инструмент немного
# просел (0.90 -> 0.87 при `tool_choice="required"`): учебный план — это компромисс, и измеряют его, как любое
# другое изменение рецепта. Типы шаблонов оказались столь же хрупкими (одна лишь смена текстов валидатора опустила их
# с 13 до 4 точных из 30 запросов dev), поэтому теперь разминка охватывает и вызовы генератора шаблонов, 900 шагов:
# 14 из 30.

# %%
import math

from datasets import Dataset
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import PrinterCallback, ProgressCallback
from transformers.utils.notebook import NotebookProgressCallback
from trl import SFTTrainer

from lessons_lib.adapters import find_artifact, resolve_artifact, save_trained
from lessons_lib.models import free_memory
from lessons_lib.recipes import recipe_differences
from lessons_lib.tools.adapter import tool_configs, tool_recipe, training_length
from lessons_lib.train import is_quantized, keep_adapter_fp32, sft_config

# The tiny model ties lm_head to its input embeddings; its tool adapter keeps an untied lm_head copy on purpose.
warnings.filterwarnings("ignore", message=".*tie_word_embeddings=True.*", category=UserWarning)
DEMO_STEPS = min(8, profile.train_steps)  # a few steps to watch the loss fall, as notebook 04 (a rehearsal: 6)
del base  # one base at a time: section 4's goes before the training base comes
free_memory()
found = find_artifact("tools", profile, lesson.work_dir, lesson.hub_namespace)  # shipped / work dir / Drive / Hub
steps = DEMO_STEPS if found else TOOL_STEPS or profile.quick_train_steps
recipe = tool_recipe(profile)
train_rows = rows[: steps * recipe.batch_size * recipe.grad_accum]  # tokenize only what these steps use
lora = LoraConfig(
    r=recipe.rank,
    lora_alpha=recipe.alpha,
    lora_dropout=recipe.lora_dropout,
    target_modules=recipe.target_modules,
    task_type="CAUSAL_LM",
    bias="none",
    modules_to_save=list(recipe.modules_to_save) if recipe.modules_to_save else None,
)  # tiny: lm_head
args = sft_config(
    profile,
    lesson.work_dir / "tools_adapter" / "checkpoints",
    max_steps=steps,
    max_length=training_length(train_rows, tok, profile),
    learning_rate=recipe.learning_rate,
    per_device_train_batch_size=recipe.batch_size,
    gradient_accumulation_steps=recipe.grad_accum,
    logging_steps=max(1, steps // 6),
    save_strategy="no",
)
library_lora, library_args = tool_configs(profile, args.output_dir, steps, args.max_length)  # train_tool_adapter's
assert recipe_differences(lora, library_lora) == {}  # every LoraConfig field
assert recipe_differences(args, library_args, ignore=("logging_steps", "save_strategy")) == {}  # a demo: no saves
what = (
    tr(en="a short demo", ru="короткая демонстрация") if found else tr(en="training the adapter", ru="обучаем адаптер")
)
print(
    tr(
        en=f"{what}: {steps} steps of {recipe.batch_size}x{recipe.grad_accum} rows, max_length {args.max_length} "
        "(the longest row)",
        ru=f"{what}: {steps} {plural_ru(steps, 'шаг', 'шага', 'шагов')} по {recipe.batch_size}x{recipe.grad_accum} "
        f"{plural_ru(recipe.batch_size * recipe.grad_accum, 'строке', 'строки', 'строк')}, "
        f"max_length {args.max_length} "
        "(самая длинная строка)",
    )
)
print(tr(en="time:", ru="время:"), budget.describe_estimate("tools", profile, steps))  # the demo too: long rows on 7b
to_train = load_base(profile)
if is_quantized(to_train):  # QLoRA: norms to fp32, input gradients for gradient checkpointing
    to_train = prepare_model_for_kbit_training(to_train, use_gradient_checkpointing=args.gradient_checkpointing)
trainer = SFTTrainer(
    model=get_peft_model(to_train, lora), args=args, train_dataset=Dataset.from_list(train_rows), processing_class=tok
)
keep_adapter_fp32(trainer.model)  # TRL casts QLoRA adapters to bf16; fp16 AMP on a T4 needs fp32 weights
for callback in (PrinterCallback, ProgressCallback, NotebookProgressCallback):  # the loss line below says it all
    trainer.remove_callback(callback)
trainer.train()
logged = [h for h in trainer.state.log_history if "loss" in h]
losses = [h["loss"] for h in logged]
moved = sum(p.detach().float().abs().sum().item() for n, p in trainer.model.named_parameters() if "lora_B" in n)
positions = trainer.model.config.max_position_embeddings
print(
    tr(en="loss by step:", ru="loss по шагам:"),
    " · ".join(f"{h['step']}: {h['loss']:.2f}" for h in logged),
    tr(en=f"| sum of |lora_B| = {moved:.3g} (0 before training)", ru=f"| сумма |lora_B| = {moved:.3g} (0 до обучения)"),
)

# %%
assert losses and all(math.isfinite(x) for x in losses) and moved > 0, "training must update LoRA with finite loss"
if expects_quality(profile):
    assert losses[-1] < losses[0], "the loss should fall even in a short run"
else:
    why = (
        tr(
            en=f"rows of up to {args.max_length} tokens run past the tiny model's {positions} positions",
            ru=f"строки до {args.max_length} токенов выходят за {positions} позиций крошечной модели",
        )
        if args.max_length > positions
        else tr(
            en=f"{steps} steps at the GPU profile's learning rate",
            ru=f"{steps} {plural_ru(steps, 'шаг', 'шага', 'шагов')} со скоростью обучения GPU-профиля",
        )
    )
    print(
        tr(
            en=f"rehearsal: the GPU code path ran (loss {losses[0]:.2f} -> {losses[-1]:.2f}); no claim that it falls: "
            f"{why}",
            ru=f"репетиция: код для GPU отработал (loss {losses[0]:.2f} -> {losses[-1]:.2f}); что он падает, не "
            f"утверждаем: {why}",
        )
    )
if found is None:  # the real run: save it where this lesson (and a later runtime) finds it
    trainer.model.save_pretrained(lesson.work_dir / "tools_adapter")
    save_trained("tools", profile, lesson.work_dir / "tools_adapter", lesson.work_dir, steps)
elif found.source == "shipped":
    print(
        tr(
            en=f"(the shipped adapter ran the same recipe for {STEPS} steps, after a {WARM_STEPS}-step warm-up on "
            f"the calls of {', '.join(WARM_TOOLS)} alone)",
            ru=f"(поставляемый адаптер прошёл тот же рецепт за {STEPS} {plural_ru(STEPS, 'шаг', 'шага', 'шагов')}, "
            f"после разминки в {WARM_STEPS} {plural_ru(WARM_STEPS, 'шаг', 'шага', 'шагов')} "
            f"только на вызовах {', '.join(WARM_TOOLS)})",
        )
    )
del trainer, to_train
free_memory()
tools_dir = resolve_artifact("tools", profile, lesson.work_dir, lesson.hub_namespace).folder

# %% [markdown]
# Now the comparison that matters: the same held-out requests through the base and through the adapter,
# in one mixed batch (`adapter_names`, `"__base__"` for the base). Turn 1 asks for a call; calls that
# validate are executed and turn 2 asks for the final answer.
#
# - **correct tool**: the call names the tool the request needs;
# - **valid args**: the arguments pass the schema *and* the tool accepts them;
# - **exact args**: the arguments equal the gold ones (text copied exactly, right numbers; the order of the
#   validator's rules and an omitted argument that has the gold value as its default don't count);
# - **final answer**: the final answer delivers the right result (the formatted text or template
#   verbatim; the validator's verdict).

# %% [markdown] lang="ru"
# Теперь сравнение, которое действительно важно: одни и те же отложенные запросы через базовую модель и через адаптер,
# в одном смешанном батче (`adapter_names`, `"__base__"` для базовой модели). Ход 1 просит вызов; вызовы, прошедшие
# проверку, выполняются, и ход 2 просит итоговый ответ.
#
# - **correct tool**: вызов называет тот инструмент, который нужен запросу;
# - **valid args**: аргументы проходят проверку по схеме *и* принимаются инструментом;
# - **exact args**: аргументы совпадают с эталонными (текст скопирован точно, числа верны; порядок правил валидатора
#   и пропущенный аргумент, чьё значение по умолчанию равно эталонному, не в счёт);
# - **final answer**: итоговый ответ содержит правильный результат (отформатированный текст или шаблон
#   дословно; вердикт валидатора).

# %%
from peft import PeftModel

from lessons_lib.evaluate import format_table
from lessons_lib.tools.evaluate import base_never_saw_tools, evaluate_tools, score_problems

model = PeftModel.from_pretrained(load_base(profile), tools_dir, adapter_name="tools")  # a fresh base
model.eval()
N_EVAL = profile.eval_examples
# None: each reply gets room for what it may copy (`constrained.reply_budgets`, more below); a rehearsal, which claims
# nothing about quality, stops every reply at its profile's few tokens
REPLY_BUDGET = None if expects_quality(profile) else MAX_NEW
reports, raw = evaluate_tools(model, tok, ["__base__", "tools"], n=N_EVAL, max_new_tokens=REPLY_BUDGET)
print(format_table([r.row() for r in reports]))
base_report, tools_report = reports

# %%
for item in raw["tools"][:3]:
    print(tr(en="request:", ru="запрос: "), item["request"])
    print(tr(en="call:   ", ru="вызов:  "), item["call"])
    print(tr(en="final:  ", ru="ответ:  "), (item["final"] or "")[:160], "\n")
misses = [item for item in raw["tools"] if not item["score"].valid_args]
print(
    tr(
        en=f"{len(misses)} adapter calls failed validation",
        ru=f"вызовов адаптера, не прошедших проверку: {len(misses)}",
    ),
    *(m["score"].reason[:120] for m in misses[:3]),
    sep="\n",
)

# %%
heldout = tool_examples(N_EVAL, "heldout")
problems = score_problems(raw["base"] + raw["tools"], heldout * 2)  # replies that contradict their scores
assert not problems, problems
if expects_quality(profile):
    # The course's goal is >= 0.9: the shipped tiny adapter reaches 0.93 on both with free decoding (its manifest:
    # 60 requests); the floor leaves room for the GPU profiles' shorter runs. Hand-written requests are harder (below).
    assert tools_report.correct_tool >= 0.7 and tools_report.valid_args >= 0.7, tools_report
if expects_quality(profile) and base_never_saw_tools(profile):  # a chat base may call tools on its own
    assert base_report.correct_tool <= 0.2 and base_report.valid_args <= 0.2, base_report
    assert tools_report.correct_tool - base_report.correct_tool >= 0.5
if not expects_quality(profile):
    print(
        tr(
            en=f"rehearsal: {N_EVAL} requests scored through both adapters (adapter correct tool "
            f"{tools_report.correct_tool:.2f}, base {base_report.correct_tool:.2f}); "
            f"no quality claim after {steps} training steps",
            ru=f"репетиция: {N_EVAL} {plural_ru(N_EVAL, 'запрос оценён', 'запроса оценены', 'запросов оценены')} "
            "через оба варианта (верный инструмент у адаптера "
            f"{tools_report.correct_tool:.2f}, у base {base_report.correct_tool:.2f}); "
            f"о качестве после {steps} {plural_ru(steps, 'шага', 'шагов', 'шагов')} обучения не судим",
        )
    )

# %% [markdown]
# Template held-out requests still share their *shape* with the training data. The harder test is
# requests **written by hand**, in a user's voice, that no template produced
# (`assets/tools/heldout_handwritten.jsonl`, 60 requests, EN + RU, 10 per tool and language):

# %% [markdown] lang="ru"
# Отложенные запросы из шаблонов всё же разделяют с обучающими данными свою *форму*. Более трудная проверка —
# запросы, **написанные вручную** голосом пользователя, которые не породил ни один шаблон
# (`assets/tools/heldout_handwritten.jsonl`, 60 запросов, EN + RU, по 10 на каждый инструмент и язык):

# %%
from lessons_lib.tools.data import read_handwritten

hand = read_handwritten()
hand = hand[:: max(1, len(hand) // profile.eval_examples)]  # all 60, or an even spread on a small eval budget
hand_reports, hand_raw = evaluate_tools(model, tok, ["__base__", "tools"], examples=hand, max_new_tokens=REPLY_BUDGET)
print(format_table([r.row() for r in hand_reports]))
hand_base, hand_tools = hand_reports

# %%
assert not score_problems(hand_raw["base"] + hand_raw["tools"], hand * 2)
if expects_quality(profile):
    assert hand_tools.correct_tool >= 0.6, hand_tools  # chance is 0.33; the tiny adapter scores about 0.85
if expects_quality(profile) and base_never_saw_tools(profile):
    assert hand_base.correct_tool <= 0.2 and hand_tools.correct_tool - hand_base.correct_tool >= 0.5, hand_base
if not expects_quality(profile):
    print(
        tr(
            en=f"rehearsal: {len(hand)} hand-written requests scored; adapter correct tool "
            f"{hand_tools.correct_tool:.2f}",
            ru=f"репетиция: оценено {len(hand)} "
            + plural_ru(
                len(hand), "написанный вручную запрос", "написанных вручную запроса", "написанных вручную запросов"
            )
            + f"; верный инструмент у адаптера "
            f"{hand_tools.correct_tool:.2f}",
        )
    )

# %% [markdown]
# Read the tables honestly (the figures below are the tiny profile's; on a GPU profile read your own the
# same way; on a rehearsal the adapter trained a handful of steps and its rates mean nothing). The adapter
# learned the *form* of a call, and on template-style requests
# phrased in ways it never saw it picks the right tool about nine times in ten, and its misses are
# calls that broke the JSON (the ones printed above). The base never calls a tool at all.
# On hand-written requests it is right about 85% of the time (chance is 33%): the tiny base model, trained
# on a narrow synthetic corpus, does not understand a new phrasing the way a real chat model does.
#
# Now look at the arguments. The adapter copies the **numbers** (width, indent) from the request, and it
# copies most of the text too, but not letter for letter: a word comes out with a slipped letter or a piece
# of another word (see the calls printed above), so few arguments are exact: about one in twenty on the template
# requests (whose names come from pools it never saw) and about a quarter on the hand-written ones. On dev requests
# (training phrasings, names it never saw) it copies about three in four of them exactly (the manifest's
# `dev_exact_args`): this base was pretrained to copy made-up names, and a
# whole new sentence is the harder case. With free decoding both
# rates stay below the 0.9 we aim for (see the manifest); a larger base (the GPU profiles) or more
# pretraining on copying whole sentences are the levers for the text.
# The broken JSON, though, we can rule out at the decoder — next.
#
# ### Structured generation: make a broken call impossible
#
# Most misses above are calls that broke the JSON. Instead of hoping the model writes a valid call, we can
# let it write **only** valid calls: at each step of `generate`, allow just the tokens that keep the reply
# the beginning of some call that matches the schemas. `model.generate` takes exactly that hook,
# `prefix_allowed_tokens_fn(batch_id, input_ids) -> allowed token ids`. `lessons_lib.tools.constrained`
# builds it from the same JSON schemas: one regular expression for every valid call (tool names, argument
# names in order, integers, enums, the validator's rule names), and the `regex` module's *partial*
# matching answers "can this text still become a match?". API servers call this structured outputs,
# JSON mode or `tool_choice="required"`; vLLM, llama.cpp grammars and Outlines do the same with
# compiled automata instead of a Python loop.
#
# A grammar is only as strict as its schema. A docstring cannot say which strings `rules` accepts, or that a width
# is at least 1, so `lessons_lib.tools.tool_schemas()` is `get_json_schema` plus one JSON Schema `pattern` for the
# rule names and the bounds each tool checks (`minimum`, `maximum`, `maxLength`, ...; `validate_call` checks them
# too). One rule is beyond JSON Schema: the indent must stay below the width, two arguments at once. The course
# lists such rules beside its tools (`functions.BELOW`) and the grammar keeps them as well:

# %% [markdown] lang="ru"
# Читайте таблицы честно (цифры ниже — для профиля tiny; на GPU-профиле читайте свои так же;
# в репетиции адаптер обучался всего несколько шагов, и его показатели ничего не значат). Адаптер
# усвоил *форму* вызова: на запросах в стиле шаблонов с формулировками, которых он никогда не видел, он выбирает
# правильный инструмент примерно в девяти случаях из десяти, а его промахи — вызовы со сломанным JSON (они напечатаны
# выше). Базовая модель не вызывает инструменты вовсе.
# На запросах, написанных вручную, адаптер прав примерно в 85% случаев (при случайном выборе было бы 33%): крошечная
# базовая модель, обученная на узком синтетическом корпусе, не понимает новую формулировку так, как настоящая
# чат-модель.
#
# Теперь посмотрите на аргументы. **Числа** (ширину, отступ) адаптер копирует из запроса, и большую часть текста
# тоже, но не буква в букву: в слове проскакивает чужая буква или кусок другого слова (см. вызовы выше), поэтому
# точных аргументов мало: примерно один из двадцати на запросах из шаблонов (их имена взяты из пулов, которых он не
# видел) и около четверти на запросах, написанных вручную. На запросах dev
# (формулировки из обучения, незнакомые имена) он точно копирует примерно три из четырёх (`dev_exact_args` в
# манифесте): эту базовую модель предобучали копировать выдуманные имена, а целое новое предложение — случай
# потруднее. При свободном декодировании оба показателя остаются
# ниже целевых 0.9 (см. манифест); улучшить копирование текста могут более крупная базовая модель (GPU-профили) или
# более долгое предобучение на копировании целых предложений. А вот сломанный JSON можно исключить на уровне
# декодера — об этом дальше.
#
# ### Структурированная генерация: сломанный вызов становится невозможным
#
# Большинство промахов выше — вызовы со сломанным JSON. Вместо того чтобы надеяться, что модель напишет корректный
# вызов, можно позволить ей писать **только** корректные вызовы: на каждом шаге `generate` разрешать лишь те токены, с
# которыми ответ остаётся началом какого-нибудь вызова, соответствующего схемам. `model.generate` принимает ровно
# такой хук: `prefix_allowed_tokens_fn(batch_id, input_ids) -> allowed token ids`. `lessons_lib.tools.constrained`
# строит его из тех же JSON-схем: одно регулярное выражение описывает все корректные вызовы (имена инструментов, имена
# аргументов по порядку, целые числа, значения enum, имена правил валидатора), а *частичное* сопоставление модуля
# `regex` отвечает на вопрос «может ли этот текст ещё стать совпадением?». В API-серверах это называется structured
# outputs, JSON mode или `tool_choice="required"`; грамматики vLLM и llama.cpp, а также Outlines делают то же самое с
# помощью скомпилированных автоматов вместо цикла на Python.
#
# Грамматика строга ровно настолько, насколько строга её схема. Docstring не может сказать, какие строки принимает
# `rules` и что ширина не меньше 1, поэтому `lessons_lib.tools.tool_schemas()` — это `get_json_schema` плюс один
# `pattern` JSON Schema для имён правил и границы, которые проверяет каждый инструмент (`minimum`, `maximum`,
# `maxLength`, ...; `validate_call` тоже их проверяет). Одно правило JSON Schema не выразить: отступ должен быть меньше
# ширины, а это сразу два аргумента. Курс перечисляет такие правила рядом с инструментами (`functions.BELOW`), и
# грамматика соблюдает и их:

# %%
from lessons_lib.tools import tool_schemas
from lessons_lib.tools.calls import parse_and_validate
from lessons_lib.tools.constrained import CallConstraint, CallGrammar, call_pattern
from lessons_lib.tools.functions import BELOW
from lessons_lib.tools.schemas import schemas_by_name

strict = tool_schemas()
print("rules:", strict[2]["function"]["parameters"]["properties"]["rules"])
print("width:", strict[0]["function"]["parameters"]["properties"]["width"])
print("beyond JSON Schema:", BELOW)
grammar = CallGrammar(strict)
print(call_pattern(strict)[:200], "...\n")
for prefix in [
    '{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 2',
    '{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 0',
    '{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 12, "indent": 1',
    '{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 12, "indent": 12',
    '{"tool": "text_formater"',
    '{"tool": "content_validator", "arguments": {"text": "Hi", "rules": ["max_length:',
    '{"tool": "content_validator", "arguments": {"text": "Hi", "rules": ["short',
]:
    print(f"{str(grammar.viable(prefix.encode())):5s} {prefix}")
assert grammar.viable(b'{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 2')
assert not grammar.viable(b'{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 0')  # minimum 1
assert grammar.viable(b'{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 12, "indent": 1')  # 1 or 11
assert not grammar.viable(b'{"tool": "text_formatter", "arguments": {"text": "Hi", "width": 12, "indent": 12')
assert not grammar.viable(b'{"tool": "text_formater"') and not grammar.viable(
    b'{"tool": "content_validator", "arguments": {"text": "Hi", "rules": ["short'
)

# %% [markdown]
# The hook in action on a request whose free call broke (the `transformers` call stays visible). The
# grammar's promise, checked below on every reply: a whole call that validates — or, when `max_new_tokens`
# cuts the reply short, the beginning of one. Told the budget (`max_new_tokens=` here too), the constraint closes
# open strings and lists once a quarter of it is left, so even a reply that keeps repeating itself ends as a call.

# %% [markdown] lang="ru"
# Хук в действии на запросе, свободный вызов для которого сломался (вызов `transformers` остаётся на виду).
# Обещание грамматики, которое ниже проверяется на каждом ответе: целый вызов, проходящий проверку, — или, если
# `max_new_tokens`
# обрывает ответ, начало такого вызова. Зная бюджет (здесь тоже `max_new_tokens=`), ограничение закрывает открытые
# строки и списки, когда от него остаётся четверть, так что даже ответ, который повторяет сам себя, кончается вызовом.

# %%
import torch


def keeps_promise(reply: str) -> bool:
    """A constrained reply is a whole call that validates, or (cut off by max_new_tokens) the start of one."""
    text = reply.strip().encode()
    if grammar.complete(text):
        return parse_and_validate(reply, schemas_by_name(strict)) is not None  # raises if it breaks the schema
    return grammar.viable(text)


request = misses[0]["request"] if misses else demo[0].request
enc = tok([chat_text(tok, request, tools=schemas)], return_tensors="pt", add_special_tokens=False).to(model.device)
constraint = CallConstraint(tok, [CallGrammar(strict)], prompt_length=enc.input_ids.shape[1], max_new_tokens=MAX_NEW)
with torch.no_grad():
    out = model.generate(
        **enc,
        max_new_tokens=MAX_NEW,
        do_sample=False,
        adapter_names=["tools"],
        prefix_allowed_tokens_fn=constraint,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
constrained_call = tok.decode(out[0, enc.input_ids.shape[1] :], skip_special_tokens=True)
print(tr(en="request:    ", ru="запрос:         "), request)
free_call = next(
    (m["call"] for m in misses if m["request"] == request),
    tr(en="(no free miss this run)", ru="(в этом запуске промахов нет)"),
)
print(tr(en="free:       ", ru="свободный:      "), free_call)
print(tr(en="constrained:", ru="с ограничением:"), constrained_call)
assert keeps_promise(constrained_call)
if expects_quality(profile):  # MAX_NEW >= 128 tokens holds a whole call
    assert grammar.complete(constrained_call.strip().encode())

# %% [markdown]
# Now the whole held-out set with `tool_choice="required"` (first turn only: the calls are what changes):

# %% [markdown] lang="ru"
# Теперь вся отложенная выборка с `tool_choice="required"` (только первый ход: меняются именно вызовы):

# %%
required_reports, required_raw = evaluate_tools(
    model, tok, ["__base__", "tools"], n=N_EVAL, max_new_tokens=MAX_NEW, turns=1, tool_choice="required"
)
first_turn = ("final answer", "uses result")  # the second turn's columns stay empty here
print(format_table([{k: v for k, v in r.row().items() if k not in first_turn} for r in reports + required_reports]))
base_required, tools_required = required_reports

# %%
calls = [
    item["call"] for item in required_raw["base · schema-constrained"] + required_raw["tools · schema-constrained"]
]
finished = [c for c in calls if grammar.complete(c.strip().encode())]
assert all(keeps_promise(c) for c in calls)  # the grammar's promise, on every profile
cut = len(calls) - len(finished)
print(
    tr(
        en=f"{len(finished)}/{len(calls)} constrained calls are whole within {MAX_NEW} new tokens and validate"
        + (f"; the other {cut} were cut short and are beginnings of valid calls" if cut else ""),
        ru=f"{len(finished)} из {len(calls)} {plural_ru(len(calls), 'вызова', 'вызовов', 'вызовов')} с ограничением "
        f"целые в пределах {MAX_NEW} {plural_ru(MAX_NEW, 'нового токена', 'новых токенов', 'новых токенов')} "
        "и проходят "
        "проверку" + (f"; остальные {cut} обрезаны и являются началами корректных вызовов" if cut else ""),
    )
)
if expects_quality(profile):
    assert len(finished) == len(calls)
    assert tools_required.correct_tool >= 0.9 and tools_required.valid_args >= 0.9, tools_required  # the goal
if expects_quality(profile) and base_never_saw_tools(profile):
    assert base_required.correct_tool <= 0.6, base_required  # the grammar gives the base a form, not a choice
    assert tools_required.correct_tool - base_required.correct_tool >= 0.4

# %% [markdown]
# Read this table carefully, because it is easy to fool yourself with it. Under the constraint *every*
# reply that has enough new tokens to finish is a valid call — the base's too (a rehearsal's few tokens cut the calls
# short: the cell above counts them) — so "valid args" now measures the grammar, not the model (the indent
# below the width included: without `BELOW` one hand-written request below got width 1 with indent 4, and the tool
# refused it). What
# is still the model's own is the **choice**: on the tiny profile the adapter names the right tool almost
# always, the base only about one time in four, no better than a blind pick among three tools. The text inside the
# call is still not the request's text: a decoder
# can forbid wrong *forms*, it cannot teach a skill (but see `quote=` below). And a constraint
# only belongs where a call is required: it would force a call on "hello" too. That is why `ModelChat`
# applies it only to replies to a user message when you ask for `tool_choice="required"`, and leaves the
# final answer free. It also has a price: every step checks candidate tokens in Python, so on the tiny model
# a first batch of constrained calls takes about 2× the time of free ones, about 1.5× once the per-tokenizer
# cache is warm, and about 1.4× when the call must also quote the request (`quote=`, below;
# `python -m benchmarks.bench_constrained` measures all of them side by side). The price grows with the vocabulary:
# TinyLlama and Mistral have 32k tokens to the tiny model's 2k, so the constraint finds the allowed ones by walking a
# byte trie of the vocabulary, testing a token only when its prefix passed — about 3 ms per row and step on a CPU
# instead of 35 for testing every token (`python -m benchmarks.bench_constraint_vocab`), paid on top of the GPU's
# forward pass.

# %% [markdown] lang="ru"
# Прочитайте эту таблицу внимательно: с ней легко обмануть самого себя. Под ограничением *каждый* ответ,
# которому хватает новых токенов, чтобы закончить вызов, — корректный вызов, в том числе у базовой модели (на
# репетиции немногие токены обрывают вызовы: ячейка выше их считает), — так что "valid args" теперь измеряет
# грамматику, а не
# модель (и отступ меньше ширины тоже: без `BELOW` один запрос, написанный вручную, ниже получал ширину 1 при
# отступе 4, и инструмент его отвергал).
# Собственным делом модели остаётся **выбор**: на профиле tiny адаптер называет правильный инструмент почти
# всегда, базовая модель — лишь примерно в одном случае из четырёх, не лучше выбора наугад из трёх инструментов. Текст
# внутри вызова по-прежнему не текст
# запроса: декодер
# может запретить неверные *формы*, но не может научить навыку (но см. `quote=` ниже). И ограничение
# уместно только там, где вызов обязателен: иначе оно навязало бы вызов и в ответ на "hello". Поэтому `ModelChat`
# применяет его только к ответам на сообщение пользователя, когда вы просите `tool_choice="required"`, и оставляет
# итоговый ответ свободным. У него есть и цена: на каждом шаге токены-кандидаты проверяются на Python, поэтому на
# крошечной модели
# первый батч ограниченных вызовов занимает примерно в 2× больше времени, чем свободных, примерно в 1.5× — когда
# кэш для токенизатора уже прогрет, и примерно в 1.4× — когда вызов ещё и обязан цитировать запрос (`quote=`, ниже;
# `python -m benchmarks.bench_constrained` измеряет все случаи рядом). Цена растёт со словарём: у TinyLlama и Mistral
# 32 тыс. токенов против 2 тыс. у крошечной модели, поэтому ограничение ищет разрешённые токены обходом байтового
# дерева (trie) словаря и проверяет токен, только если прошёл его префикс, — около 3 мс на строку и шаг на CPU вместо
# 35 при проверке каждого токена (`python -m benchmarks.bench_constraint_vocab`), и это сверх прямого прохода на GPU.

# %% [markdown]
# A decoder can, though, rule out text that is *not in the request*. `quote=True` gives every request its own grammar,
# `CallGrammar(strict, quote=request)`: free-text arguments (`text`, `topic`) must then be whole phrases of the
# request, starting at a word and ending where a clause ends (a full stop, a comma, a colon, a dash between spaces, a
# closing quotation mark, a line break, the end), never halfway through brackets or a quotation, so `{"id": 7, "ok":
# true}` is quoted whole and not cut at its first comma. The text `text_formatter` wraps is a *whole* text
# (`functions.WHOLE_TEXTS`): it ends where a sentence, a line or a quotation does, never at a comma inside a sentence
# — the adapter, trained on short texts, liked to stop there, and a text cut at its first comma is a wrong call that
# looks right (on the hand-written dev requests this rule, with quotes that may start after « and end before », took
# exact arguments from 0.29 to 0.40: 10 calls better, none worse). Numbers too: where the call can take one of the
# request's numbers (a width, an indent, the 40 of `max_length:40`), it gets one of those, not a number the request
# never wrote (when none fits, or the request writes no number, any number the schema allows). It also guards the
# final answer (`lessons_lib/tools/faithful.py`): the model writes what it likes, but once its answer starts repeating
# the tool's result (a line that begins like the result, or 8 bytes of it from a word on), it must go on copying until
# a sentence or a string of the result ends. A copy needs room: with `max_new_tokens=None` (`REPLY_BUDGET` above, on
# every profile but a rehearsal), `evaluate_tools` and `ModelChat` give each reply the tokens of what it may copy (the
# request in a call, the tool's result in an answer) plus 48, and a third on top so a call need not start closing
# before its copy ends, at least 128 (`constrained.reply_budgets`): a pasted paragraph is not cut off mid-quote, and a
# short request keeps a short budget. Scored on the hand-written requests, written in people's own words. Two columns
# judge the final answer: **final answer** asks for the *expected* result (so a wrong call fails it however well the
# answer reads), **uses result** asks whether the answer delivers the result of the call that *ran* — the tool's own
# output, or its verdict in the request's language — which is what the second turn alone is responsible for:

# %% [markdown] lang="ru"
# Зато декодер может запретить текст, *которого нет в запросе*. `quote=True` строит для каждого запроса свою
# грамматику, `CallGrammar(strict, quote=request)`: свободные текстовые аргументы (`text`, `topic`) тогда обязаны быть
# целыми фразами запроса — начинаться со слова и заканчиваться там, где кончается часть предложения (точка, запятая,
# двоеточие, тире между пробелами, закрывающая кавычка, перенос строки, конец), и никогда посреди скобок или кавычек,
# так что `{"id": 7, "ok": true}` попадает в аргумент целиком, а не обрывается на первой запятой. Текст, который
# переносит `text_formatter`, — текст *целиком* (`functions.WHOLE_TEXTS`): он кончается там, где кончается
# предложение, строка или цитата, и никогда на запятой внутри предложения — адаптер, обученный на коротких текстах,
# любил останавливаться именно там, а текст, оборванный на первой запятой, — неверный вызов, который выглядит верным
# (на написанных вручную dev-запросах это правило вместе с цитатами, которые могут начинаться после « и кончаться
# перед », подняло точные аргументы с 0.29 до 0.40: 10 вызовов стали лучше, ни один не стал хуже). С числами так же:
# где вызов может взять одно из чисел запроса (ширину, отступ, 40 в `max_length:40`), он берёт одно из них, а не
# число, которого в запросе нет (если ни одно не подходит или чисел в запросе нет — любое, какое допускает схема).
# Заодно он охраняет итоговый ответ (`lessons_lib/tools/faithful.py`): модель пишет что хочет, но как только ответ
# начинает повторять результат инструмента (строка начинается как результат или 8 байт совпадают с ним начиная со
# слова), она обязана копировать дальше, пока не кончится предложение или строка результата. Копии нужно место: при
# `max_new_tokens=None` (`REPLY_BUDGET` выше, на всех профилях, кроме репетиций) `evaluate_tools` и `ModelChat` дают
# каждому ответу столько токенов, сколько занимает то, что он может скопировать (запрос — в вызове, результат
# инструмента — в ответе), плюс 48, и ещё треть сверху, чтобы вызов не начал закрываться раньше конца копии, но не
# меньше 128 (`constrained.reply_budgets`): вставленный абзац не обрывается посреди цитаты, а короткий запрос
# сохраняет короткий бюджет. Оценка на запросах, написанных людьми своими словами. Итоговый ответ судят две колонки:
# **итоговый ответ** требует *ожидаемого* результата (неверный вызов его проваливает, как бы ни был хорош ответ),
# **ответ с результатом** проверяет, передаёт ли ответ результат того вызова, что *выполнился*, — вывод инструмента
# или его вердикт на языке запроса; только за это и отвечает второй ход:

# %%
from lessons_lib.tools.calls import call_text

# First the quoting grammar on one request: a formatter's text is whole; a validator's text may end at a clause.
quoting = CallGrammar(strict, quote="Wrap at 30: The ferry leaves at noon, weather permitting.")
tries = [
    ("text_formatter", {"text": "The ferry leaves at noon", "width": 30}),
    ("text_formatter", {"text": "The ferry leaves at noon, weather permitting.", "width": 30}),
    ("text_formatter", {"text": "The ferry leaves at dawn, weather permitting.", "width": 30}),
    ("content_validator", {"text": "The ferry leaves at noon", "rules": ["non_empty"]}),
]
verdicts = [quoting.complete(call_text(name, args).encode()) for name, args in tries]
for (name, args), ok in zip(tries, verdicts):
    print(f"{'allowed' if ok else 'refused':8s} {name}: {args['text']!r}")
assert verdicts == [False, True, False, True]  # cut at a comma; whole; not the request's words; a clause is enough

# %%
from lessons_lib.tools.data import answer_prompt

# `hand`: the hand-written requests scored above (all 60, or the even spread of a small eval budget)
(plain_hand,), plain_raw = evaluate_tools(
    model, tok, ["tools"], examples=hand, max_new_tokens=REPLY_BUDGET, tool_choice="required"
)
(quoted_hand,), quoted_raw = evaluate_tools(
    model, tok, ["tools"], examples=hand, max_new_tokens=REPLY_BUDGET, tool_choice="required", quote=True
)
print(format_table([r.row() for r in (plain_hand, quoted_hand)]))
rows = list(zip(hand, plain_raw[plain_hand.label], quoted_raw[quoted_hand.label]))
shown = [(ex, plain["call"], quoted["call"]) for ex, plain, quoted in rows if plain["call"] != quoted["call"]]
labels = [
    tr(en=en, ru=ru) for en, ru in (("expected", "ожидалось"), ("free    ", "свободно "), ("quoted  ", "цитата   "))
]
for ex, plain, quoted in shown[:: max(1, len(shown) // 4)][:4]:  # four requests where quoting changed the call
    calls = (call_text(ex.tool, ex.arguments), plain.strip(), quoted.strip())
    print(f"\n{ex.request}" + "".join(f"\n  {label}: {call}" for label, call in zip(labels, calls)))
# the first exact quoted call whose answer the guard changes: the same chat, answered freely and guarded
free_chat = ModelChat(model, tok, adapter="tools", max_new_tokens=REPLY_BUDGET)
guarded_chat = ModelChat(model, tok, adapter="tools", max_new_tokens=REPLY_BUDGET, tool_choice="required", quote=True)
for ex, quoted in [(ex, quoted) for ex, _, quoted in rows if quoted["score"].exact_args][:6]:
    after_call = answer_prompt(ex, quoted["call"], ex.result)
    free_answer, guarded_answer = free_chat(after_call), guarded_chat(after_call)
    if free_answer != guarded_answer:
        print(f"\n{ex.request}\n  {labels[1]}: {free_answer!r}\n  {labels[2]}: {guarded_answer!r}")
        break
gain = quoted_hand.exact_args - plain_hand.exact_args
final_gain = quoted_hand.final_correct - plain_hand.final_correct
print(
    tr(
        en=f"\nquoting: exact arguments {plain_hand.exact_args:.2f} -> {quoted_hand.exact_args:.2f} ({gain:+.2f}), "
        f"final answers {plain_hand.final_correct:.2f} -> {quoted_hand.final_correct:.2f} ({final_gain:+.2f}), "
        f"answers that deliver their call's result {plain_hand.uses_result:.2f} -> {quoted_hand.uses_result:.2f}; "
        f"right tool {plain_hand.correct_tool:.2f} -> {quoted_hand.correct_tool:.2f}",
        ru=f"\nцитирование: точные аргументы {plain_hand.exact_args:.2f} -> {quoted_hand.exact_args:.2f} "
        f"({gain:+.2f}), "
        f"итоговые ответы {plain_hand.final_correct:.2f} -> {quoted_hand.final_correct:.2f} ({final_gain:+.2f}), "
        f"ответы с результатом своего вызова {plain_hand.uses_result:.2f} -> {quoted_hand.uses_result:.2f}; "
        f"верный инструмент {plain_hand.correct_tool:.2f} -> {quoted_hand.correct_tool:.2f}",
    )
)
if expects_quality(profile) and base_never_saw_tools(profile):
    assert quoted_hand.correct_tool == plain_hand.correct_tool  # the tool's name comes before any quoted text
    assert gain >= 0.3 and final_gain >= 0.2, (plain_hand, quoted_hand)
    assert quoted_hand.final_correct >= quoted_hand.exact_args - 0.1  # an exact call's result reaches the answer
    assert plain_hand.uses_result >= 0.7  # the adapter learned the second turn: answers deliver their call's result
    assert quoted_hand.uses_result >= max(0.85, plain_hand.uses_result + 0.05)  # the guard stops the slips left
    assert quoted_hand.uses_result >= quoted_hand.final_correct + 0.15  # ... a wrong call's result included

# %% [markdown]
# On the tiny profile the adapter copies a sentence with a slip or two (a letter from another word, a Cyrillic
# syllable), so only about a quarter of the free arguments are exact; forbidding what is not in the request removes
# the slips, and six in ten become exact. The final answer is another story: the adapter trained a second turn on
# every request (`ANSWER_EVERY` in `lessons_lib/tools/adapter.py`), so even unguarded most of its answers repeat the
# result they got, in the request's language; the guard stops the slips that remain, and almost every exact call
# becomes a correct final answer. What stays wrong is the model's **choice** in the call, which no decoder fixes:
# the wrong tool or phrase, a rule left out, a full stop left off, a Russian topic that the request has only in
# another grammatical case (`о возврате денег`, while the expected topic is `возврат денег`, so no quote can be
# exact). A guard repeats a wrong call's result just as faithfully: it makes answers *honest about the result*, not
# right — which is what the **uses result** column counts, and why it stays well above **final answer**.
#
# The loop with the adapter, the constrained first turn and quoting, end to end; under each run, the call we
# expected and whether the run made it and delivered its result (the guard starts copying only once the answer
# begins like the result, so an answer whose first word already slipped keeps its slip):

# %% [markdown] lang="ru"
# На профиле tiny адаптер копирует предложение с одной-двумя ошибками (буква из другого слова, кириллический слог),
# поэтому точна лишь примерно четверть свободных аргументов; запрет на то, чего нет в запросе, убирает эти ошибки, и
# точными становятся шесть из десяти. С итоговым ответом иначе: адаптер учился второму ходу на каждом запросе
# (`ANSWER_EVERY` в `lessons_lib/tools/adapter.py`), поэтому даже без охраны большинство его ответов повторяют
# полученный результат, и на языке запроса; охрана убирает оставшиеся ошибки, и почти каждый точный вызов становится
# верным итоговым ответом. Неверным остаётся **выбор** модели в вызове, который не исправит никакой декодер: не тот
# инструмент или не та фраза, пропущенное правило, потерянная точка, русская тема, которая в запросе стоит только в
# другом падеже (`о возврате денег`, а ожидается `возврат денег`, так что точной цитаты не бывает). Результат неверного
# вызова охрана повторит так же точно: она делает ответ *честным по отношению к результату*, а не правильным, — именно
# это считает колонка **ответ с результатом**, и поэтому она заметно выше, чем **итоговый ответ**.
#
# Цикл с адаптером, ограниченным первым ходом и цитированием от начала до конца; под каждым запуском — вызов, которого
# мы ждали, и сделал ли его запуск и передал ли его результат (охрана начинает копировать, лишь когда ответ начался
# как результат, поэтому ответ, в первом слове которого уже проскочила ошибка, эту ошибку сохраняет):

# %%
from lessons_lib.tools.evaluate import final_correct, is_expected_call

chat = ModelChat(model, tok, strict, adapter="tools", max_new_tokens=REPLY_BUDGET, tool_choice="required", quote=True)
for ex in demo:
    result = run_tool_loop(chat, ex.request, max_steps=3)
    exact = is_expected_call(ex, result.calls[0] if result.calls else None)
    right = result.answer is not None and final_correct(ex, result.answer)
    verdict = tr(
        en=f"{'the expected call' if exact else 'not the expected call'}, "
        f"{'the expected final answer' if right else 'not the expected final answer'}",
        ru=f"{'ожидаемый вызов' if exact else 'не ожидаемый вызов'}, "
        f"{'ожидаемый итоговый ответ' if right else 'не ожидаемый итоговый ответ'}",
    )
    expected = tr(en="expected call", ru="ожидаемый вызов")
    print(
        f"request: {ex.request}\n{result.transcript()}\n{expected}: {call_text(ex.tool, ex.arguments)}\n-> {verdict}\n"
    )

# %% [markdown]
# ## 6. Route tool requests to the tool adapter
#
# Notebook 04's keyword router picks an adapter per request by counting keyword hits per label. We add a
# `tools` label with words that signal a tool request. Tool requests often mention a domain word too
# ("a bug report template", "check that it is valid JSON"), and the router breaks ties in favour of the
# label listed first — so `tools` goes first.

# %% [markdown] lang="ru"
# ## 6. Направляем запросы на вызов инструментов к адаптеру инструментов
#
# Маршрутизатор по ключевым словам из ноутбука 04 выбирает адаптер для каждого запроса, подсчитывая совпадения
# ключевых слов каждой метки. Мы добавляем метку `tools` со словами, которые выдают запрос к инструменту. Такие
# запросы часто упоминают и слово из предметной области ("a bug report template", "check that it is valid JSON"), а
# при равном счёте маршрутизатор выбирает метку, указанную первой, — поэтому `tools` стоит первой.

# %%
from lessons_lib.data import DOMAINS, examples
from lessons_lib.router import DEFAULT_RULES, KeywordRouter

TOOL_WORDS = [
    "wrap",
    "reflow",
    "indent",
    "width",
    "columns",
    "characters",
    "formatter",
    "format the text",
    "template",
    "blank",
    "validate",
    "verify",
    "check that",
    "checks",
    "make sure",
    "confirm",
    "перенеси",
    "разбей",
    "выровняй",
    "отформатируй",
    "форматтер",
    "отступ",
    "ширин",
    "символов",
    "шаблон",
    "заготовк",
    "проверь",
    "проверк",
    "валидируй",
    "убедись",
    "подтверди",
]
router = KeywordRouter(rules={"tools": TOOL_WORDS, **DEFAULT_RULES})

tool_requests = [ex.request for ex in tool_examples(60, "heldout", seed=5)]
domain_requests = {d: [ex.prompt for ex in examples(d, 20, "heldout", seed=5)] for d in DOMAINS}
route_rows = [
    {
        "requests": "tools",
        "n": len(tool_requests),
        "routed right": sum(router.route(t).label == "tools" for t in tool_requests) / len(tool_requests),
    }
]
route_rows += [
    {"requests": d, "n": len(texts), "routed right": sum(router.route(t).label == d for t in texts) / len(texts)}
    for d, texts in domain_requests.items()
]
print(format_table(route_rows))
assert all(row["routed right"] >= 0.9 for row in route_rows), route_rows

# %% [markdown]
# Now one batch through one base with four adapters: the router decides per request, and only the
# requests routed to `tools` get the tools in their prompt.

# %% [markdown] lang="ru"
# Теперь один батч через одну базовую модель с четырьмя адаптерами: маршрутизатор решает для каждого запроса, и только
# запросы, направленные в `tools`, получают инструменты в своём промпте.

# %%
for name in COURSE_ADAPTERS:
    model.load_adapter(folders[name], adapter_name=name)  # found (or trained) at the top of the notebook

requests = [ex.request for ex in tool_examples(4, "heldout", seed=7)]
requests += [examples(domain, 1, "heldout", seed=7)[0].prompt for domain in DOMAINS]
decisions = [router.route(text) for text in requests]
chosen = [d.adapter for d in decisions]  # "general" would be "__base__"
for text, d in zip(requests, decisions):
    print(f"{d.label:8s} → {d.adapter:9s} {text[:70]}")

# %%
from lessons_lib.tools.loop import complete

texts = [chat_text(tok, text, tools=schemas if name == "tools" else None) for text, name in zip(requests, chosen)]


def generate_grouped(texts, names):
    """One sub-batch per adapter: set_adapter (or disable_adapter for the base), generate, put rows back."""
    out = [None] * len(texts)
    for name in dict.fromkeys(names):
        rows_of = [i for i, n in enumerate(names) if n == name]
        if name == "__base__":
            with model.disable_adapter():
                answers = complete(model, tok, [texts[i] for i in rows_of], MAX_NEW)
        else:
            model.set_adapter(name)
            answers = complete(model, tok, [texts[i] for i in rows_of], MAX_NEW)
        for i, answer in zip(rows_of, answers):
            out[i] = answer
    return out


# The tiny tool adapter carries its own lm_head (modules_to_save) and the domain adapters do not: PEFT
# cannot mix such adapters in one `adapter_names` batch (KeyError, and the failed call leaves its hooks
# behind), so we generate one sub-batch per adapter.
replies = generate_grouped(texts, chosen)
for name, reply in zip(chosen, replies):
    print(f"{name:9s} {reply[:100]!r}")

# %%
assert chosen[:4] == ["tools"] * 4, chosen
assert chosen[4:] == list(DOMAINS), chosen
if expects_quality(profile):
    assert all(reply.startswith('{"tool"') for reply in replies[:4])

# %% [markdown]
# One base, four adapters: the router decides per request and only the tool rows get the tools in their
# prompt. With plain LoRA adapters this runs as one mixed batch (`adapter_names`, notebook 02). An adapter
# that also saves whole modules (our tiny tool adapter's `lm_head`) cannot share a mixed batch with
# adapters that do not, so here the rows are grouped per adapter — a real constraint to remember when
# you design adapters for a server.
#
# ## 7. Style by prompt, skill by adapter
#
# The original homework offered an optional "cognitive designer" system prompt: explain through an
# **anchor** (something the learner knows), the **essence** (one sentence), the **mechanism** (how it
# works, on an example), the **breakthrough** (what clicks), with an analogy and a **contrast** with a
# common mistake. Here is our version; the toggle below switches it on and off and shows both answers.

# %% [markdown] lang="ru"
# Одна базовая модель, четыре адаптера: маршрутизатор решает для каждого запроса, и только строки для инструментов
# получают
# инструменты в своём промпте. С обычными LoRA-адаптерами это выполняется одним смешанным батчем (`adapter_names`,
# ноутбук 02).
# Адаптер, который вдобавок сохраняет целые модули (`lm_head` нашего крошечного адаптера инструментов), не может
# делить смешанный
# батч с адаптерами, которые этого не делают, поэтому здесь строки сгруппированы по адаптерам — реальное ограничение,
# о котором
# стоит помнить, когда вы проектируете адаптеры для сервера.
#
# ## 7. Стиль — промптом, навык — адаптером
#
# Исходное домашнее задание предлагало необязательный системный промпт «когнитивного дизайнера» (cognitive designer):
# объяснять через
# **якорь** (то, что учащийся уже знает), **суть** (одно предложение), **механизм** (как это работает, на примере),
# **прорыв** (момент, когда всё встаёт на место), с аналогией и **контрастом** с
# типичной ошибкой. Вот наша версия; переключатель ниже включает и выключает её и показывает оба ответа.

# %%
from lessons_lib.tools.prompts import style_score, system_prompt

print(system_prompt())  # in the notebook's language

# %%
from lessons_lib.models import generate
from lessons_lib.tools.playground import DESIGNER, PLAIN, StyleToggle

model.set_adapter("tools")


def explain(question, system):
    """The base model's answer, with or without a system prompt."""
    with model.disable_adapter():
        return generate(model, tok, question, MAX_NEW, system=system)


toggle = StyleToggle(explain, question="Explain what a LoRA adapter is.")
toggle

# %%
toggle.style_choice.value = DESIGNER
toggle.ask_button.click()
print(toggle.status.value)
toggle.compare_button.click()
side = toggle.last
for style, answer in side.items():
    print(f"--- {style} ({tr(en='style score', ru='оценка стиля')} {style_score(answer):.1f})\n{answer[:300]}\n")
assert set(side) == {PLAIN, DESIGNER} and "<table" in toggle.output.value
if profile.name == "tiny":  # what the text below says: the prompt changes no style on this base
    assert style_score(side[PLAIN]) == style_score(side[DESIGNER])

# %% [markdown]
# Now the contrast in numbers: the same held-out tool requests with and without the system prompt, for
# the base and for the adapter (first turn only: with the prompt, two turns would not fit the tiny
# model's 512 positions).

# %% [markdown] lang="ru"
# Теперь тот же контраст в цифрах: одни и те же отложенные запросы к инструментам с системным промптом и без него, для
# базовой модели и для адаптера (только первый ход: с промптом два хода не поместились бы в 512 позиций
# крошечной модели).

# %%
N_STYLE = min(12, profile.eval_examples)
rows_style = []
for label, system in (("no prompt", None), ("cognitive designer", system_prompt("en"))):
    reps, _ = evaluate_tools(
        model, tok, ["__base__", "tools"], n=N_STYLE, max_new_tokens=MAX_NEW, system=system, turns=1
    )
    rows_style += [
        {
            "system prompt": label,
            "model": r.label,
            "correct tool": round(r.correct_tool, 2),
            "valid args": round(r.valid_args, 2),
        }
        for r in reps
    ]
print(format_table(rows_style))

# %%
by = {(r["system prompt"], r["model"]): r for r in rows_style}
if expects_quality(profile) and base_never_saw_tools(profile):
    assert by[("cognitive designer", "base")]["correct tool"] <= 0.2  # a prompt about style teaches no tool calling
if expects_quality(profile):
    assert by[("no prompt", "tools")]["correct tool"] >= 0.6  # n=12: a coarse check that the adapter still works
if profile.name == "tiny":  # what the text below says: the unseen prompt breaks the tiny adapter's calls
    assert by[("cognitive designer", "tools")]["correct tool"] <= by[("no prompt", "tools")]["correct tool"] - 0.5

# %% [markdown]
# Be honest about what we saw. On the tiny model the system prompt changes no style (both answers above get
# the same style score): a 2M-parameter model trained on a narrow synthetic corpus cannot follow a
# paragraph of instructions. And it *breaks* the adapter: with the prompt, the tool adapter's calls fall apart
# (its correct-tool rate in the table), because it never saw a system prompt in training. What a prompt does
# to an adapter depends on the adapter's training data: train with the prompts you will serve. On the GPU
# profiles (TinyLlama, Mistral), instruction-tuned to follow system prompts, the toggle is where the *style* of
# explanations should change — anchors, analogies, contrasts; check it there with the style score above rather
# than by eye (the course's own runs have no GPU to measure it on). What no
# system prompt does, on any profile, is add a **skill** the model lacks: the base still does not call the
# tools. Style is cheap to ask for in words; a skill is trained into weights — and with LoRA, into a small
# file you can switch.
#
# ## Recap
# - A tool is a typed function with a Google-style docstring; `get_json_schema` turns it into the schema
#   the chat template (`tools=`) and LangChain use. Validate inputs and raise errors that say what to do.
# - Templates differ: some drop tools and results (TinyLlama's), some demand call ids and alternating turns
#   (Mistral's). Render tool conversations with `chat_text` (`chat_format.prepare`), and train on rows rendered
#   the same way (`tool_sft_rows(..., tokenizer=tok)`), with a `max_length` that cuts none of them.
# - The loop: parse → validate against the schema → execute → `tool` message → final answer. Malformed
#   JSON, unknown tools, bad arguments and tool errors go back to the model as messages; a step limit stops
#   endless calling.
# - A model without native tool calling learns it from a LoRA adapter trained on synthetic two-turn data
#   (request → call, call + result → answer). Measure on held-out requests: correct tool, valid and exact
#   arguments, final answer.
# - Structured generation (`prefix_allowed_tokens_fn` + a grammar from the schemas) makes malformed calls
#   impossible; it fixes the form, not the choice or the copied text, and belongs only where a call is required.
#   Quoting (`quote=True`) goes one step further: arguments must be phrases of the request, and an answer that
#   repeats the tool's result must repeat it exactly. It removes slips, not wrong choices.
# - A router sends tool-style requests to the tool adapter and the rest to domain adapters, all in one call: one
#   mixed batch (`adapter_names`) when every adapter is plain LoRA, one sub-batch per adapter when one of them saves
#   whole modules (the tiny tool adapter's `lm_head`), as here.
# - A system prompt shapes style (on models that follow instructions); an adapter adds skill.
#
# ## Exercises
# 1. Add a fourth tool, `word_counter(text, unit)` with `unit` in `words | characters | lines`, with its
#    own `ToolError`s. Check its schema, then call it through the scripted model in section 3.
# 2. The schemas already carry a `maximum` for `width` (1000), and `text_formatter` checks the same limit
#    itself. Lower it to 200 in the schema only, and call the tool once through `validate_call` and once
#    directly. Which is the better place for a limit: the schema, the tool, or both? Why?
# 3. Retrain the adapter without the answer rows (only request → call). What happens to the final-answer
#    rate, and why does the correct-tool rate barely move?
# 4. Find three requests that the keyword router sends to the wrong place. Add words to `TOOL_WORDS`
#    (or remove some) and measure the router on 40 tool and 40 domain requests.
# 5. Write ten requests of your own, in your own words, into a JSONL file like
#    `assets/tools/heldout_handwritten.jsonl` and score them with
#    `python -m lessons_lib.tools evaluate --data mine.jsonl`. Which phrasings break the adapter? Then set
#    `COMPOSED_SHARE = 0` in `lessons_lib/tools/data.py`, retrain, and compare dev and held-out rates.
# 6. A quote must be a whole phrase of the request (`quotes_phrase` in `lessons_lib/tools/constrained.py`).
#    Loosen the rule to any piece of the request (`value in quote`) and rerun the hand-written comparison above.
#    Where do the quotes start and end now, and what happens to exact arguments? Explain why a decoder that
#    guarantees *a* quote cannot guarantee *the right* quote.
# 7. The answer guard holds a copy once `MIN_COPY` bytes of it match the result (`lessons_lib/tools/faithful.py`).
#    Set it to 3 and to 20 and rerun the hand-written comparison. Which answers change, and why can a small value
#    hold a lead-in such as "Here is the …" to a result that happens to contain the same words?
# 8. The curriculum: train the tiny adapter with `warm_steps=0` and with `WARM_STEPS`
#    (`train_tool_adapter` in `lessons_lib/tools/adapter.py`, about 25 minutes each on 2 CPUs) and score both with
#    `python -m lessons_lib.tools evaluate --adapter DIR --data dev-handwritten --tool-choice required --quote`,
#    then with `--data handwritten`. How far do exact arguments move on each, and which rate pays for it?
# 9. Russian names a template in the genitive after the word it fills ("шаблон письма", "заготовка протокола
#    встречи"), while the training tables name it in the nominative, mostly quoted («письмо»). Add genitive labels
#    to a share of the natural template requests in `lessons_lib/tools/data.py`, retrain, and score dev and the
#    hand-written set as in exercise 8. Which Russian calls change? If the hand-written rate rises while dev falls,
#    which set decides whether you keep the change, and why?
# 10. Split the misses. Rerun the quoted hand-written calls with `constrained_generate`, giving each request only
#     its expected tool's schema, so the tool choice is made for the model. How many exact arguments does a perfect
#     tool choice add, and which kinds of miss are left (a full stop, a rule, a span, a case)? Would a better tool
#     choice alone reach the targets you would set for this adapter?
#
# ## Quiz

# %% [markdown] lang="ru"
# Будем честны в том, что увидели. На крошечной модели системный промпт не меняет стиль (оба ответа выше получают
# одну и ту же оценку стиля): модель с 2M параметров, обученная на узком синтетическом корпусе, не способна следовать
# целому абзацу инструкций. А адаптер промпт *ломает*: с ним вызовы адаптера инструментов разваливаются (его доля
# верных инструментов в таблице), потому что при обучении он ни разу не видел системного промпта. Что промпт сделает
# с адаптером, зависит от данных, на которых адаптер учился: обучайте с теми промптами, с которыми будете работать.
# На GPU-профилях (TinyLlama, Mistral), дообученных следовать инструкциям, в том числе системным промптам, именно
# переключатель должен менять *стиль* объяснений — якоря, аналогии, контрасты; проверяйте это там оценкой стиля выше,
# а не на глаз (у собственных запусков курса нет GPU, чтобы это измерить). Но ни на одном
# профиле системный промпт не добавляет **навык**, которого у модели нет: базовая модель по-прежнему не вызывает
# инструменты.
# Стиль легко заказать словами; навык вкладывается в веса обучением — а с LoRA в небольшой файл, который можно
# подключать и отключать.
#
# ## Итоги
# - Инструмент — это типизированная функция с docstring в стиле Google; `get_json_schema` превращает её в схему,
#   которую используют шаблон чата (`tools=`) и LangChain. Проверяйте входные данные и выдавайте ошибки, которые
#   объясняют, что делать.
# - Шаблоны различаются: одни отбрасывают инструменты и результаты (TinyLlama), другие требуют id вызовов и
#   чередования реплик
#   (Mistral). Выводите диалоги с инструментами через `chat_text` (`chat_format.prepare`) и обучайте на строках,
#   выведенных
#   так же (`tool_sft_rows(..., tokenizer=tok)`), с `max_length`, который не обрезает ни одну из них.
# - Цикл: разбор → проверка по схеме → выполнение → сообщение `tool` → итоговый ответ. Некорректный
#   JSON, неизвестные инструменты, неверные аргументы и ошибки инструментов возвращаются модели сообщениями; предел
#   шагов
#   останавливает бесконечные вызовы.
# - Модель без встроенной поддержки вызова инструментов осваивает его с помощью LoRA-адаптера, обученного на
#   синтетических
#   двухходовых данных (запрос → вызов, вызов + результат → ответ). Измеряйте на отложенных запросах: правильный
#   инструмент,
#   корректные и точные аргументы, итоговый ответ.
# - Структурированная генерация (`prefix_allowed_tokens_fn` + грамматика из схем) делает некорректные вызовы
#   невозможными; она исправляет форму, но не выбор и не скопированный текст, и уместна только там, где вызов
#   обязателен. Цитирование (`quote=True`) идёт дальше: аргументы обязаны быть фразами запроса, а ответ, который
#   повторяет результат инструмента, обязан повторить его точно. Оно убирает ошибки копирования, но не неверный выбор.
# - Маршрутизатор направляет запросы на вызов инструментов к адаптеру инструментов, а остальные — к адаптерам предметных
#   областей, и всё это за один вызов: одним смешанным батчем (`adapter_names`), когда все адаптеры — обычная LoRA, и
#   по подбатчу на адаптер, когда один из них сохраняет целые модули (`lm_head` крошечного адаптера инструментов), как
#   здесь.
# - Системный промпт задаёт стиль (у моделей, которые следуют инструкциям); адаптер добавляет навык.
#
# ## Упражнения
# 1. Добавьте четвёртый инструмент, `word_counter(text, unit)` с `unit` из `words | characters | lines`, со своими
#    `ToolError`. Проверьте его схему, затем вызовите его через заскриптованную модель из раздела 3.
# 2. В схемах уже есть `maximum` для `width` (1000), и `text_formatter` сам проверяет тот же предел.
#    Понизьте его до 200 только в схеме и вызовите инструмент один раз через `validate_call`, а один раз
#    напрямую. Где лучше задавать предел: в схеме, в инструменте или и там, и там? Почему?
# 3. Переобучите адаптер без строк с ответами (только запрос → вызов). Что происходит с долей итоговых
#    ответов и почему доля правильных инструментов почти не меняется?
# 4. Найдите три запроса, которые маршрутизатор по ключевым словам направляет не туда. Добавьте слова в `TOOL_WORDS`
#    (или уберите некоторые) и измерьте качество маршрутизатора на 40 запросах к инструментам и 40 запросах предметных
#    областей.
# 5. Напишите десять собственных запросов своими словами в файл JSONL по образцу
#    `assets/tools/heldout_handwritten.jsonl` и оцените их командой
#    `python -m lessons_lib.tools evaluate --data mine.jsonl`. Какие формулировки ломают адаптер? Затем установите
#    `COMPOSED_SHARE = 0` в `lessons_lib/tools/data.py`, переобучите адаптер и сравните показатели на dev и отложенной
#    выборке.
# 6. Цитата обязана быть целой фразой запроса (`quotes_phrase` в `lessons_lib/tools/constrained.py`). Ослабьте
#    правило до любого фрагмента запроса (`value in quote`) и повторите сравнение на рукописных запросах выше. Где
#    теперь начинаются и кончаются цитаты и что происходит с точными аргументами? Объясните, почему декодер,
#    гарантирующий *какую-то* цитату, не может гарантировать *правильную*.
# 7. Охрана ответа удерживает копию, как только `MIN_COPY` байт совпали с результатом
#    (`lessons_lib/tools/faithful.py`). Поставьте 3 и 20 и повторите сравнение на рукописных запросах. Какие ответы
#    меняются и почему маленькое значение может приковать вступление вроде "Here is the …" к результату, в котором
#    случайно есть те же слова?
# 8. Учебный план: обучите крошечный адаптер с `warm_steps=0` и с `WARM_STEPS` (`train_tool_adapter` в
#    `lessons_lib/tools/adapter.py`, около 25 минут каждый на 2 CPU) и оцените оба командой
#    `python -m lessons_lib.tools evaluate --adapter DIR --data dev-handwritten --tool-choice required --quote`,
#    а затем с `--data handwritten`. Насколько меняются точные аргументы на каждом наборе и какой показатель за это
#    платит?
# 9. По-русски шаблон называют в родительном падеже после слова, которое он заполняет («шаблон письма», «заготовка
#    протокола встречи»), а обучающие таблицы дают название в именительном, чаще в кавычках («письмо»). Добавьте формы
#    в родительном падеже в часть естественных запросов на шаблон в `lessons_lib/tools/data.py`, переобучите адаптер
#    и оцените его на dev и на рукописном наборе, как в упражнении 8. Какие русские вызовы меняются? Если доля на
#    рукописном наборе растёт, а на dev падает, какой набор решает, оставить ли изменение, и почему?
# 10. Разделите промахи. Повторите вызовы с цитированием на рукописном наборе через `constrained_generate`, давая
#     каждому запросу схему только его ожидаемого инструмента, — выбор инструмента сделан за модель. Сколько точных
#     аргументов добавляет безошибочный выбор инструмента и какие промахи остаются (точка, правило, границы фразы,
#     падеж)? Хватило бы одного лучшего выбора инструмента, чтобы достичь целей, которые вы бы поставили адаптеру?
#
# ## Тест

# %%
from lessons_lib.quiz import show_quiz

show_quiz("05")

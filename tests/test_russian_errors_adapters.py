"""The errors of the adapter check, the artifact search, mixing, the batched LoRA path and the router helpers in the
Russian edition: each is raised for real (a damaged or missing adapter folder, an unknown or missing artifact, a
missing checkpoint key, a model the batched path does not cover) and said in Russian under LESSONS_LANG=ru, with the
same paths, names and values; in English each message is exactly what it was. A static scan keeps every `raise`
message of these modules behind tr(...), and is shown to flag the English-only code of the last commit.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_compat import _edit_config as edit_config
from test_compat import _edit_weights as edit_weights
from test_compat import _zero as zero
from test_russian_errors_generation import refusal
from test_serve_russian import CYRILLIC, ENGLISH_PROSE, untranslated

from lessons_lib.compat import (
    AdapterConfigError,
    AdapterFilesError,
    AdapterNameError,
    CorruptAdapterError,
    DamagedWeightsError,
    TargetModulesError,
    check_adapter,
)
from lessons_lib.paths import REPO_DIR, TINY_ADAPTERS_DIR

JSON_DIR = TINY_ADAPTERS_DIR / "json"


def message(call, lang: str | None, error: type[BaseException] = Exception) -> str:
    """The message of the error `call()` raises, with $LESSONS_LANG set to `lang` (None: unset)."""
    return refusal(call, error, lang)


def assert_russian(ru: str, english: str, kept: tuple[str, ...] = (), drop: tuple[str, ...] = ()) -> None:
    """`ru` is Russian prose with no English sentence left (after removing `drop`, e.g. a library's own words), and
    keeps the values `kept` as they are in `english`."""
    words = ru
    for text in (*kept, *drop):
        words = words.replace(text, "")
    assert CYRILLIC.search(words) and not ENGLISH_PROSE.search(words), ru
    for value in kept:
        assert value in english and value in ru, (value, ru)


def copy_json(tmp_path: Path) -> Path:
    """A copy of the shipped tiny json adapter to damage."""
    return Path(shutil.copytree(JSON_DIR, tmp_path / "json"))


# ---------------------------------------------------------------- the adapter folder check (compat)
def missing_folder(tmp_path):
    folder = tmp_path / "nope"
    return folder, (
        f"Adapter folder {folder} does not exist (or is not a folder). Check the path, or get the adapter with "
        "lessons_lib.adapters.adapter_dir / lessons_lib.storage first."
    )


def empty_folder(tmp_path):
    folder = tmp_path / "json"
    folder.mkdir()
    return folder, (
        f"{folder} has no adapter_config.json: it is not a complete PEFT adapter. A saved adapter needs "
        "adapter_config.json and adapter_model.safetensors; re-save it with model.save_pretrained(folder) or copy "
        "the missing file."
    )


def bin_only(tmp_path):
    folder = copy_json(tmp_path)
    (folder / "adapter_model.safetensors").rename(folder / "adapter_model.bin")
    return folder, (
        f"{folder} has no adapter_model.safetensors: it is not a complete PEFT adapter. A saved adapter needs "
        "adapter_config.json and adapter_model.safetensors; re-save it with model.save_pretrained(folder) or copy "
        "the missing file. An adapter_model.bin (old pickle format) is there: load it once with PEFT and re-save it "
        "with save_pretrained(), which writes safetensors."
    )


def config_not_an_object(tmp_path):
    folder = copy_json(tmp_path)
    (folder / "adapter_config.json").write_text("[1]")
    return folder, f"{folder / 'adapter_config.json'} does not hold a JSON object; copy or download the adapter again."


def not_lora(tmp_path):
    folder = edit_config(copy_json(tmp_path), peft_type="IA3")
    return folder, f"{folder / 'adapter_config.json'} describes a IA3 adapter; this course loads LoRA adapters only."


def rank_zero(tmp_path):
    folder = edit_config(copy_json(tmp_path), r=0)
    return folder, (
        f"{folder / 'adapter_config.json'}: 'r' must be a positive whole number, got 0. Fix the value in that file "
        "(the course's adapters use r=8..16, lora_alpha=2*r) or copy the adapter again."
    )


def huge_scale(tmp_path):
    folder = edit_config(copy_json(tmp_path), lora_alpha=1600)
    return folder, (
        f"{folder / 'adapter_config.json'}: the LoRA scale lora_alpha / r = 1600 / 8 = 200 is outside "
        "0.015625..16: the adapter would swamp the base (a scale of 200 gives empty answers). lora_alpha must be "
        "the value the adapter was trained with: restore it (the course trains with lora_alpha = 2 * r), or copy "
        "the adapter again."
    )


def targets_not_names(tmp_path):
    folder = edit_config(copy_json(tmp_path), target_modules=["q_proj", 3])
    return folder, (
        f"{folder / 'adapter_config.json'}: 'target_modules' must be a list of module names (e.g. [\"q_proj\", "
        "\"v_proj\"]) or a regular expression, got ['q_proj', 3]. Fix the value in that file (the course's adapters "
        "use r=8..16, lora_alpha=2*r) or copy the adapter again."
    )


def no_lora_tensors(tmp_path):
    import torch
    from safetensors.torch import save_file

    folder = copy_json(tmp_path)
    save_file({"something.weight": torch.zeros(2, 2)}, str(folder / "adapter_model.safetensors"))
    return folder, (
        f"{folder / 'adapter_model.safetensors'} holds no LoRA weights (no '.lora_A.'/'.lora_B.' tensors among 1 "
        "tensors). Re-save the adapter with save_pretrained()."
    )


def zero_filled(tmp_path):
    folder = edit_weights(copy_json(tmp_path), zero("lora_"))
    return folder, None


# (id, the damage: returns (folder, the exact English or None), the error class, Russian phrases, values kept)
FOLDER_CASES = [
    ("missing-folder", missing_folder, AdapterFilesError, ("Папки адаптера", "Проверьте путь"), ()),
    ("empty-folder", empty_folder, AdapterFilesError, ("это не полный адаптер PEFT",), ("adapter_config.json",)),
    ("bin-only", bin_only, AdapterFilesError, ("старый формат pickle",), ("adapter_model.bin", "save_pretrained()")),
    ("config-list", config_not_an_object, CorruptAdapterError, ("не объект JSON",), ()),
    ("not-lora", not_lora, Exception, ("только адаптеры LoRA",), ("IA3",)),
    ("rank-zero", rank_zero, AdapterConfigError, ("целым положительным числом", "Исправьте значение"), ("'r'",)),
    ("huge-scale", huge_scale, AdapterConfigError, ("масштаб LoRA", "заглушит"), ("1600 / 8 = 200", "0.015625..16")),
    ("targets", targets_not_names, AdapterConfigError, ("списком имён модулей",), ("['q_proj', 3]",)),
    ("no-lora-tensors", no_lora_tensors, CorruptAdapterError, ("нет весов LoRA",), ("'.lora_A.'/'.lora_B.'",)),
    ("zero-filled", zero_filled, DamagedWeightsError, ("нулевые", "базовая модель"), ("'json'",)),
]


@pytest.mark.parametrize(
    ("case_id", "damage", "error", "russian", "kept"), FOLDER_CASES, ids=[c[0] for c in FOLDER_CASES]
)
def test_a_damaged_adapter_folder_is_russian_under_ru(base, tmp_path, case_id, damage, error, russian, kept):
    folder, english = damage(tmp_path)
    en = message(lambda: check_adapter(base, folder, "json"), None, error)
    ru = message(lambda: check_adapter(base, folder, "json"), "ru", error)
    if english is not None:
        assert en == english
    assert str(folder) in ru and all(phrase in ru for phrase in russian), ru
    assert_russian(ru.replace(str(folder), ""), en, kept)


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_a_cut_safetensors_file_is_russian_around_the_librarys_words(base, tmp_path, damage):
    folder = copy_json(tmp_path)
    weights = folder / "adapter_model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"")
    en = message(lambda: check_adapter(base, folder, "json"), None, CorruptAdapterError)
    ru = message(lambda: check_adapter(base, folder, "json"), "ru", CorruptAdapterError)
    library = re.search(r"safetensors file \((.*)\)\. It was", en, re.S)[1]  # safetensors' own words, kept
    assert en == (
        f"{weights} is not a readable safetensors file ({library}). It was probably cut off while copying or "
        "downloading: copy or download the adapter again, or re-save it with save_pretrained()."
    )
    assert ru.startswith(f"{weights} не читается как файл safetensors ({library}). "), ru
    assert "обрезан" in ru and "save_pretrained()" in ru
    assert_russian(ru.replace(str(weights), ""), en, drop=(library,))


def test_weights_that_cannot_be_right_are_russian(base, tmp_path):
    half = edit_weights(
        copy_json(tmp_path), lambda w: {k: v for k, v in w.items() if "layers.0.mlp.up_proj.lora_A" not in k}
    )
    ru = message(lambda: check_adapter(base, half, "json"), "ru", DamagedWeightsError)
    assert "только одна из матриц lora_A/lora_B" in ru and "'json'" in ru, ru
    assert_russian(ru.replace(str(half), ""), message(lambda: check_adapter(base, half, "json"), None))

    (tmp_path / "b").mkdir()
    zero_a = edit_weights(copy_json(tmp_path / "b"), zero("layers.0.mlp.up_proj.lora_A"))
    en = message(lambda: check_adapter(base, zero_a, "json"), None, DamagedWeightsError)
    ru = message(lambda: check_adapter(base, zero_a, "json"), "ru", DamagedWeightsError)
    assert en.startswith("lora_A is all zero in 1 of 28 modules in ")
    assert ru.startswith("lora_A целиком нулевая в 1 из 28 модулей в "), ru
    assert_russian(ru.replace(str(zero_a), ""), en, kept=("'json'",))


def test_config_and_tensors_that_disagree_are_russian(base, tmp_path):
    rank = edit_config(copy_json(tmp_path), r=4)
    en = message(lambda: check_adapter(base, rank, "json"), None, TargetModulesError)
    ru = message(lambda: check_adapter(base, rank, "json"), "ru", TargetModulesError)
    assert en.startswith(f"{rank / 'adapter_config.json'} says r=4, but the LoRA matrices in ")
    assert ru.startswith(f"В {rank / 'adapter_config.json'} указано r=4, но у матриц LoRA в "), ru
    assert_russian(ru.replace(str(rank), ""), en, kept=("r=4", "save_pretrained()"))

    (tmp_path / "b").mkdir()
    fewer = edit_config(copy_json(tmp_path / "b"), target_modules=["q_proj"])
    en = message(lambda: check_adapter(base, fewer, "json"), None, TargetModulesError)
    ru = message(lambda: check_adapter(base, fewer, "json"), "ru", TargetModulesError)
    assert "does not target (target_modules=['q_proj'])" in en and "PEFT would skip them" in en
    assert "не нацелен (target_modules=['q_proj'])" in ru and "не полностью" in ru, ru
    assert_russian(ru.replace(str(fewer), ""), en)


def test_an_adapter_name_already_loaded_is_russian(course_model):
    en = message(lambda: check_adapter(course_model, JSON_DIR, "json"), None, AdapterNameError)
    ru = message(lambda: check_adapter(course_model, JSON_DIR, "json"), "ru", AdapterNameError)
    assert en.startswith("An adapter named 'json' is already loaded (loaded: [")
    assert en.endswith(
        "); loading again would overwrite it. Pick another name, or call model.delete_adapter('json') first."
    )
    assert ru.startswith("Адаптер с именем 'json' уже загружен (загружены: ["), ru
    assert_russian(ru, en, kept=("model.delete_adapter('json')",))


def test_the_reports_notes_and_warnings_are_russian(base, tmp_path):
    import warnings

    untrained = edit_weights(copy_json(tmp_path), zero("lora_B"))
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        patch.setenv("LESSONS_LANG", "ru")
        report = check_adapter(base, untrained, "json")
    assert report.warnings[0].startswith("адаптер 'json' не обучен: все lora_B в "), report.warnings
    assert "ноутбук 01" in report.warnings[0]


# ---------------------------------------------------------------- the artifact search (adapters, paths)
def test_an_unknown_artifact_name_is_russian():
    from lessons_lib.adapters import ARTIFACTS, check_artifact

    names = ", ".join(ARTIFACTS)
    en = message(lambda: check_artifact("jsno"), None, ValueError)
    ru = message(lambda: check_artifact("jsno"), "ru", ValueError)
    assert en == f"Unknown course artifact 'jsno'; the course has {names}."
    assert ru == f"Неизвестный артефакт курса 'jsno'; в курсе есть {names}."


@pytest.mark.parametrize("profile_name", ["t4", "tiny"])
def test_an_artifact_found_nowhere_is_russian(monkeypatch, tmp_path, profile_name):
    from lessons_lib import adapters
    from lessons_lib.adapters import adapter_dir
    from lessons_lib.profiles import get_profile

    monkeypatch.setattr(adapters, "DRIVE_MOUNT", tmp_path / "not-mounted")
    profile = get_profile(profile_name)
    if profile.ships_adapters:  # nothing shipped either: the search looks in an empty assets folder
        monkeypatch.setattr(adapters, "shipped_dir", lambda name: tmp_path / "assets" / name)
    en = message(lambda: adapter_dir("support", profile, tmp_path), None, FileNotFoundError)
    ru = message(lambda: adapter_dir("support", profile, tmp_path), "ru", FileNotFoundError)
    local = str(tmp_path / "adapters" / "support")
    assert en.startswith(f"Adapter 'support' for the {profile_name} profile not found. Looked in: ")
    assert local in en and "Google Drive (not mounted)" in en
    if profile.ships_adapters:
        assert en.endswith(
            "The tiny adapters ship in assets/adapters; rebuild them with `python -m lessons_lib.tiny build`."
        )
        assert ru.endswith("пересоберите их командой `python -m lessons_lib.tiny build`."), ru
    else:
        assert en.endswith(
            "Train it in notebook 01 (or 04 for the router, 05 for the tool adapter), or call "
            "lessons_lib.adapters.resolve_artifact, which trains a quick version when none is found."
        )
        assert "ноутбуке 01" in ru and "lessons_lib.adapters.resolve_artifact" in ru, ru
    assert ru.startswith(f"Адаптер 'support' для профиля {profile_name} не найден. Где искали: "), ru
    assert local in ru and "Google Диск (не подключён)" in ru, ru
    assert_russian(ru.replace(str(tmp_path), ""), en, drop=("Hugging Face Hub",))  # the glossary's name


def test_a_folder_not_found_is_russian(tmp_path):
    from lessons_lib.i18n import tr
    from lessons_lib.paths import require_dir

    folder = tmp_path / "tiny-model"

    def call():
        require_dir(
            folder, tr(en="The tiny course model", ru="Маленькая модель курса"), tr(en="Clone it.", ru="Склонируйте.")
        )

    assert message(call, None, FileNotFoundError) == f"The tiny course model not found at {folder}. Clone it."
    assert (
        message(call, "ru", FileNotFoundError) == f"Маленькая модель курса: не найдено по пути {folder}. Склонируйте."
    )


def test_load_with_no_adapter_names_is_russian(base):
    from lessons_lib.adapters import load_with_adapters
    from lessons_lib.profiles import get_profile

    def call():
        load_with_adapters(base, get_profile("tiny"), [])

    assert message(call, None, ValueError) == "Give at least one adapter name."
    assert message(call, "ru", ValueError) == "Укажите хотя бы одно имя адаптера."


# ---------------------------------------------------------------- mixing: a checkpoint key, a folder, an unmerged model
def test_checkpoint_errors_are_russian(tmp_path):
    import torch
    from safetensors.torch import save_file

    from lessons_lib.mixing import checkpoint_tensor

    folder = tmp_path / "merged"
    folder.mkdir()
    missing = message(lambda: checkpoint_tensor(folder, "lm_head.weight"), None, FileNotFoundError)
    assert missing == f"No model.safetensors or model.safetensors.index.json in {folder}."
    ru = message(lambda: checkpoint_tensor(folder, "lm_head.weight"), "ru", FileNotFoundError)
    assert ru == f"В {folder} нет model.safetensors или model.safetensors.index.json."
    save_file({"model.norm.weight": torch.ones(2)}, str(folder / "model.safetensors"))
    key = "model.layers.0.mlp.up_proj.weight"
    assert (
        message(lambda: checkpoint_tensor(folder, key), None, KeyError)
        == f"{key!r} is not in the checkpoint of {folder}."
    )
    assert (
        message(lambda: checkpoint_tensor(folder, key), "ru", KeyError) == f"{key!r} нет в контрольной точке {folder}."
    )


def test_saving_a_peft_model_as_merged_is_russian(course_model, tmp_path):
    from lessons_lib.mixing import save_merged

    def call():
        save_merged(course_model, None, tmp_path / "out")

    assert message(call, None, TypeError) == (
        "This is still a PeftModel; call model.merge_and_unload() first and save what it returns."
    )
    ru = message(call, "ru", TypeError)
    assert ru.startswith("Это всё ещё PeftModel; сначала вызовите model.merge_and_unload()"), ru


# ---------------------------------------------------------------- the batched LoRA path's refusals
def small_peft(**config):
    """A two-layer toy model with one LoRA adapter on `q_proj` (no course model needed)."""
    import torch
    from peft import LoraConfig, get_peft_model

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = torch.nn.Linear(4, 4)
            self.v_proj = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.v_proj(self.q_proj(x))

    return get_peft_model(Toy(), LoraConfig(r=2, target_modules=["q_proj"], **config)).eval()


def test_the_batched_path_refuses_in_russian():
    import torch

    from lessons_lib.batched_lora import BatchedLora, NotCovered, covers

    plain = torch.nn.Linear(2, 2)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LESSONS_LANG", raising=False)
        assert covers(plain) == (False, "the model is not a PeftModel with adapters loaded")
        patch.setenv("LESSONS_LANG", "ru")
        assert covers(plain) == (False, "модель — не PeftModel с загруженными адаптерами")
    en = message(lambda: BatchedLora(plain).refresh(), None, NotCovered)
    ru = message(lambda: BatchedLora(plain).refresh(), "ru", NotCovered)
    assert en == (
        "The batched LoRA path does not cover this model: the model is not a PeftModel with adapters loaded. "
        "Use PEFT's adapter_names= path instead."
    )
    assert ru == (
        "Батчевый путь LoRA не поддерживает эту модель: модель — не PeftModel с загруженными адаптерами. "
        "Используйте вместо него путь PEFT с adapter_names=."
    )


@pytest.mark.parametrize(
    ("config", "train", "english", "russian"),
    [
        (
            dict(use_dora=True),
            False,
            "adapter 'default' uses a LoRA variant (DoraLinearVariant) in ",
            "использует вариант LoRA",
        ),
        (
            dict(lora_bias=True),
            False,
            "adapter 'default' has a trainable LoRA bias (lora_bias=True) in ",
            "обучаемое смещение LoRA",
        ),
        ({}, True, "the model is in training mode (LoRA dropout would be live): call model.eval()", "режиме обучения"),
    ],
    ids=["DoRA", "lora_bias", "training"],
)
def test_covers_reasons_are_russian(config, train, english, russian):
    from lessons_lib.batched_lora import covers

    model = small_peft(**config)
    if train:
        model.train()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("LESSONS_LANG", raising=False)
        ok, en = covers(model)
        patch.setenv("LESSONS_LANG", "ru")
        ok_ru, ru = covers(model)
    assert not ok and not ok_ru and en.startswith(english), en
    assert russian in ru, ru
    assert_russian(ru, en, drop=("model.eval()",))


def test_bad_rows_are_russian():
    from lessons_lib.batched_lora import BatchedLora

    batched = BatchedLora(small_peft())

    def empty():
        with batched.rows([]):
            pass

    def unknown():
        with batched.rows(["nope"]):
            pass

    assert message(empty, None, ValueError) == (
        "adapter_names is empty: give one adapter name (or '__base__') per batch row."
    )
    assert message(empty, "ru", ValueError) == (
        "adapter_names пуст: укажите по одному имени адаптера (или '__base__') на строку батча."
    )
    assert message(unknown, None, ValueError) == (
        "Unknown adapter(s) ['nope']: loaded are ['default'] (and '__base__' for the base)."
    )
    assert message(unknown, "ru", ValueError) == (
        "Неизвестные адаптеры ['nope']: загружены ['default'] (и '__base__' для базовой модели)."
    )


# ---------------------------------------------------------------- the router helpers
def test_router_helper_errors_are_russian():
    from lessons_lib.router.metrics import evaluate_router, threshold_accuracy
    from lessons_lib.router.routed import RoutedModel

    class Router:
        labels = ("json", "coding")

    assert message(lambda: evaluate_router(Router(), []), None, ValueError) == (
        "No rows to evaluate: give at least one {'text': ..., 'label': ...} row."
    )
    ru = message(lambda: evaluate_router(Router(), []), "ru", ValueError)
    assert ru == "Нет строк для оценки: дайте хотя бы одну строку {'text': ..., 'label': ...}."
    rows = [{"text": "x", "label": "poem"}]
    assert message(lambda: evaluate_router(Router(), rows), None, ValueError) == (
        "Gold labels ['poem'] are not labels this router can output (json, coding)."
    )
    ru = message(lambda: evaluate_router(Router(), rows), "ru", ValueError)
    assert "['poem']" in ru and "(json, coding)" in ru and "маршрутизатор" in ru, ru
    ru = message(lambda: threshold_accuracy([[1.0]], [], ["json"], 0.5, "json"), "ru", ValueError)
    assert "строк: 1" in ru and "меток: 0" in ru, ru

    class Model:
        peft_config = {"json": None}

    en = message(lambda: RoutedModel(Model(), None, Router()), None, ValueError)
    ru = message(lambda: RoutedModel(Model(), None, Router()), "ru", ValueError)
    assert en == (
        "The router can choose ['coding'], but the model has no such adapter loaded (loaded: ['json']). Load them "
        "with model.load_adapter(folder, adapter_name=...)."
    )
    assert ru.startswith("Маршрутизатор может выбрать ['coding'], но такие адаптеры"), ru
    assert_russian(ru, en, kept=("model.load_adapter(folder, adapter_name=...)",))


# ---------------------------------------------------------------- every raise message of these modules goes through tr
MODULES = (
    "lessons_lib/compat.py",
    "lessons_lib/adapters.py",
    "lessons_lib/paths.py",
    "lessons_lib/mixing.py",
    "lessons_lib/batched_lora.py",
    "lessons_lib/router/routed.py",
    "lessons_lib/router/metrics.py",
)
# Raise messages left in English on purpose, as (module, the English text): only what no learner can reach. None
# is left today: every raise of these modules can reach a notebook (a bad argument to a course function included).
INTERNAL: set[tuple[str, str]] = set()
WORD = re.compile(r"[A-Za-z]{2,}")
# Functions whose returned text a learner reads without a raise: the batched path's reasons, shown in NotCovered and
# in the server's /health as "peft (REASON)" (the scan by name cannot follow them: BatchedLora.covers shadows covers).
REASON_FUNCTIONS = {"lessons_lib/batched_lora.py": ("covers", "_model_problem", "_layer_problem")}


def raised_english(source: str, reasons: tuple[str, ...] = ()) -> list[str]:
    """Every string (or f-string part) with a word in it written directly in a `raise X(...)` or returned by a
    module-level function named in `reasons`, outside tr(...)."""
    found: list[str] = []

    def walk(node: ast.AST) -> None:
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tr":
            return
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and WORD.search(node.value):
            found.append(node.value)
        for child in ast.iter_child_nodes(node):
            walk(child)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for argument in (*node.exc.args, *(k.value for k in node.exc.keywords)):
                walk(argument)
    for function in ast.parse(source).body:
        if isinstance(function, ast.FunctionDef) and function.name in reasons:
            for node in ast.walk(function):
                if isinstance(node, ast.Return) and node.value is not None:
                    walk(node.value)
    return found


def exception_calls(source: str) -> dict[str, int]:
    """The exception classes a module builds (`...Error(`, NotCovered(`), each with its message at position 0."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name and (name.endswith("Error") or name == "NotCovered"):
                names.add(name)
    return dict.fromkeys(names, 0)


def english_in(module: str, source: str) -> list[str]:
    """The English prose of `module`'s error messages outside tr: written in a raise, or reaching an exception
    through a variable, a helper of the module (covers() -> the refusal) or a parameter; INTERNAL left out."""
    _, followed = untranslated(source, exception_calls(source))
    texts = raised_english(source, REASON_FUNCTIONS.get(module, ())) + [f.split(": ", 1)[1] for f in followed]
    return [t for t in texts if (module, t) not in INTERNAL and (module, t.strip("'\"")) not in INTERNAL]


ENGLISH_ONLY_COMMIT = "1fdc42c3c1e2f3d02180aac774b5e6df5244e67d"  # the last commit before these modules spoke Russian


@pytest.mark.parametrize("module", MODULES)
def test_every_error_message_goes_through_tr(module):
    source = (REPO_DIR / module).read_text(encoding="utf-8")
    assert exception_calls(source), module  # the scan sees the module's exceptions
    assert english_in(module, source) == []


def test_the_scan_flags_the_english_only_code_of_the_last_commit():
    """The scan above can fail: on these modules as they were before the Russian edition it finds their English."""
    found = {}
    for module in MODULES:
        old = subprocess.run(
            ["git", "show", f"{ENGLISH_ONLY_COMMIT}:{module}"], cwd=REPO_DIR, capture_output=True, text=True
        )
        if old.returncode != 0:
            pytest.skip(f"this checkout has no git history for {module}: {old.stderr.strip()}")
        found[module] = " | ".join(english_in(module, old.stdout))
    for module, english in [
        ("lessons_lib/compat.py", "Adapter folder "),
        ("lessons_lib/compat.py", " is not a readable safetensors file ("),
        ("lessons_lib/compat.py", "Fix the value in that file"),  # `fix`, a local variable
        ("lessons_lib/adapters.py", "Unknown course artifact "),
        ("lessons_lib/adapters.py", " profile not found. Looked in: "),  # returned by not_found_error
        ("lessons_lib/paths.py", " not found at "),
        ("lessons_lib/mixing.py", " is not in the checkpoint of "),
        ("lessons_lib/mixing.py", "No "),  # "No model.safetensors or ... in {folder}.": no prose, but a word
        ("lessons_lib/batched_lora.py", "The batched LoRA path does not cover this model: "),
        ("lessons_lib/batched_lora.py", "the model is not a PeftModel with adapters loaded"),  # covers()'s reason
        ("lessons_lib/router/routed.py", "but the model has no such adapter loaded"),
        ("lessons_lib/router/metrics.py", "No rows to evaluate"),
    ]:
        assert english in found[module], (module, english)

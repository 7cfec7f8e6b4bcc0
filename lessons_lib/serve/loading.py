"""Load what the server serves: the profile's base, its adapters (course folders or a store folder), the router.

The course adapters are the three domain adapters and the tools adapter (notebook 05), which answers tool calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..i18n import tr
from ..profiles import Profile
from ..router import DEFAULT_KIND as DEFAULT_ROUTER

# What reading one adapter's files can raise: the compat checks' AdapterCompatError (a ValueError), and raw
# ValueError/TypeError/KeyError/OSError from a field of the wrong JSON type or an unreadable file.
UNREADABLE_ADAPTER = (ValueError, TypeError, KeyError, OSError)


class ServeOptionError(ValueError):
    """What was asked for by name (a --router, a --lora-modules folder) cannot be served; the CLI exits with 2."""


@dataclass
class ServedModel:
    """The loaded base with its adapters, the tokenizer, and where each adapter came from."""

    profile: Profile
    model: object  # a PeftModel (or a plain model when no adapter was found)
    tokenizer: object
    folders: dict[str, Path]  # adapter name -> folder
    base_id: str
    router: object | None = None
    router_kind: str | None = None
    router_error: str | None = None
    skipped: list[str] = field(default_factory=list)  # folders that were not loaded, with the reason

    @property
    def adapters(self) -> list[str]:
        """Names of the loaded adapters, in load order."""
        return list(self.folders)


def parse_lora_modules(specs: list[str] | None) -> dict[str, Path]:
    """`name=path` pairs (vLLM's --lora-modules syntax) as {name: folder}; ValueError for a pair without '=' or a name
    given twice."""
    modules: dict[str, Path] = {}
    for spec in specs or []:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(
                tr(
                    en=f"--lora-modules takes name=path pairs, got {spec!r} (e.g. json=/content/adapters/json).",
                    ru=f"--lora-modules принимает пары имя=путь, а получено {spec!r} (например, "
                    "json=/content/adapters/json).",
                )
            )
        if name in modules:
            raise ValueError(
                tr(
                    en=f"--lora-modules names {name!r} twice ({modules[name]} and {path}); give each adapter its own "
                    "name.",
                    ru=f"--lora-modules называет {name!r} дважды ({modules[name]} и {path}); дайте каждому адаптеру "
                    "своё имя.",
                )
            )
        modules[name] = Path(path)
    return modules


def named_folders(modules: dict[str, Path]) -> tuple[dict[str, Path], list[str]]:
    """The named folders that hold a PEFT adapter under a safe name; the others as skip reasons."""
    from ..storage import ADAPTER_FILES, name_problem

    found, skipped = {}, []
    for name, folder in modules.items():
        problem = name_problem(name)
        if problem is not None:
            skipped.append(f"{folder}: {problem}")
            continue
        if (Path(folder) / ADAPTER_FILES[0]).is_file():
            found[name] = Path(folder)
        else:
            skipped.append(
                tr(
                    en=f"{name}={folder}: no adapter_config.json there (not a saved PEFT adapter folder)",
                    ru=f"{name}={folder}: там нет adapter_config.json (это не папка сохранённого адаптера PEFT)",
                )
            )
    return found, skipped


def find_adapter_folders(
    profile: Profile,
    adapters_dir: str | Path | None = None,
    work_dir: Path | None = None,
    lora_modules: dict[str, Path] | None = None,
) -> tuple[dict[str, Path], list[str]]:
    """Adapter folders to serve: the named `lora_modules`, else every PEFT folder in `adapters_dir`, else the
    course adapters of the profile and its tools adapter (shipped, work dir or Drive)."""
    from ..adapters import COURSE_ADAPTERS, TOOLS, adapter_dir
    from ..storage import adapter_folders, name_problem, recover_saves

    if lora_modules:
        return named_folders(lora_modules)
    skipped: list[str] = []
    if adapters_dir is None:
        found = {}
        for name in (*COURSE_ADAPTERS, TOOLS):
            try:
                found[name] = adapter_dir(name, profile, work_dir)
            except FileNotFoundError as err:
                skipped.append(str(err))
        return found, skipped
    root = Path(adapters_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            tr(
                en=f"Adapter folder {root} does not exist. Point --adapters-dir at a folder holding one "
                "sub-folder per adapter (adapter_config.json + adapter_model.safetensors).",
                ru=f"Папки адаптеров {root} нет. Укажите в --adapters-dir папку, где у каждого адаптера своя "
                "подпапка (adapter_config.json + adapter_model.safetensors).",
            )
        )
    recover_saves(root)  # an overwrite killed between its renames left the adapter at .NAME.old: put it back
    found = {}
    for folder in adapter_folders(root):
        problem = name_problem(folder.name)
        if problem is None:
            found[folder.name] = folder
        else:
            skipped.append(f"{folder}: {problem}")
    skipped += [not_an_adapter_text(folder) for folder in sorted(root.iterdir()) if holds_no_adapter(folder)]
    return found, skipped


def holds_no_adapter(folder: Path) -> bool:
    """A visible folder with something in it but no adapter_config.json (a copy cut short, a manifest alone)."""
    return (
        folder.is_dir()
        and not folder.name.startswith(".")
        and not (folder / "adapter_config.json").is_file()
        and any(folder.iterdir())
    )


def not_an_adapter_text(folder: Path) -> str:
    """Why `--adapters-dir` skips a folder that holds no adapter."""
    return tr(
        en=f"{folder}: no adapter_config.json (not a saved PEFT adapter folder)",
        ru=f"{folder}: нет adapter_config.json (это не папка сохранённого адаптера PEFT)",
    )


def load_router(kind: str | None, profile: Profile, work_dir: Path | None = None, log=print):
    """(router, error): the course router for model='auto', or None and why it is unavailable."""
    if not kind or kind == "none":
        return None, tr(en="started without a router (--router none)", ru="запущен без маршрутизатора (--router none)")
    try:
        from ..router import load_router as course_router

        return course_router(kind, profile, work_dir=work_dir, log=log), None
    except Exception as err:  # noqa: BLE001 - the server still serves named adapters without a router
        why = f"{type(err).__name__}: {err}"
        return None, tr(
            en=f"the {kind!r} router could not be loaded ({why})",
            ru=f"маршрутизатор {kind!r} не удалось загрузить ({why})",
        )


def load_served_model(
    profile: Profile,
    adapters_dir: str | Path | None = None,
    work_dir: Path | None = None,
    router: str | None = DEFAULT_ROUTER,
    log=print,
    lora_modules: dict[str, Path] | None = None,
    require_router: bool = False,
) -> ServedModel:
    """Load the router, base + tokenizer, and every adapter (checked against the base first).

    A damaged adapter found in a folder is left out with a warning; one named in `lora_modules`, or a router that
    cannot load when `require_router`, is a ServeOptionError (the router is loaded first: that costs no wait).
    """
    from ..compat import AdapterCompatError, load_adapter_checked
    from ..manifest import base_model_id
    from ..models import load_base_and_tokenizer

    folders, skipped = find_adapter_folders(profile, adapters_dir, work_dir, lora_modules)
    refuse_named(lora_modules, skipped)
    router_obj, router_error = load_router(router, profile, work_dir, log)
    if require_router and router_obj is None and router not in (None, "none"):  # --router none asks for none
        raise ServeOptionError(router_refusal(router, router_error))
    model, tokenizer = load_base_and_tokenizer(profile, log=log)
    base_id = base_model_id(model)
    loaded: dict[str, Path] = {}
    for name, folder in folders.items():
        try:
            model, _ = load_adapter_checked(model, folder, name)
            loaded[name] = folder
        except UNREADABLE_ADAPTER as err:  # one damaged adapter must not stop the others from being served
            kind = "" if isinstance(err, AdapterCompatError) else f"{type(err).__name__}: "
            skipped.append(f"{name} ({folder}): {kind}{err}")
    refuse_named(lora_modules, skipped)
    model.eval()
    rows_without_saved_modules(model)
    for reason in skipped:
        log(tr(en=f"WARNING: not served: {reason}", ru=f"ПРЕДУПРЕЖДЕНИЕ: не обслуживается: {reason}"))
    return ServedModel(
        profile=profile,
        model=model,
        tokenizer=tokenizer,
        folders=loaded,
        base_id=base_id,
        router=router_obj,
        router_kind=router if router_obj is not None else None,
        router_error=router_error,
        skipped=skipped,
    )


def refuse_named(lora_modules: dict[str, Path] | None, skipped: list[str]) -> None:
    """ServeOptionError when an adapter named in `lora_modules` cannot be served (vLLM refuses to start too)."""
    if lora_modules and skipped:
        raise ServeOptionError(
            tr(
                en=f"--lora-modules: cannot serve {'; '.join(skipped)}. Each NAME=PATH must name a saved PEFT "
                "adapter folder (adapter_config.json + adapter_model.safetensors) built for this base.",
                ru=f"--lora-modules: нельзя подать {'; '.join(skipped)}. Каждая пара ИМЯ=ПУТЬ должна указывать на "
                "папку сохранённого адаптера PEFT (adapter_config.json + adapter_model.safetensors) для этой базы.",
            )
        )


def router_refusal(kind: str | None, error: str) -> str:
    """The message for a router asked for by name that could not be loaded."""
    return tr(
        en=f"--router {kind}: {error}. Pick another router (ngram, keyword, learned, embedding), or --router none "
        "to serve without model='auto'.",
        ru=f"--router {kind}: {error}. Выберите другой маршрутизатор (ngram, keyword, learned, embedding) или "
        "--router none, чтобы сервер работал без model='auto'.",
    )


def rows_without_saved_modules(model) -> int:
    """Let a mixed batch hold rows of adapters with and without `modules_to_save`; returns the modules fixed.

    The tools adapter trains a copy of `lm_head` (modules_to_save); the domain adapters do not. PEFT 0.21's
    mixed-batch forward looks every row's adapter up in that copy's table, so a batch with a `json` row and a
    `tools` row raised KeyError: 'json'. Here a row whose adapter saved no copy goes through the original module,
    which is what that adapter alone computes.
    """
    from peft.utils.other import ModulesToSaveWrapper

    fixed = 0
    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper) and not getattr(module, "_rows_without_copy", False):
            wrapped = module._forward_wrapped_mixed_batch

            def forward(x, active_adapter, *args, _module=module, _wrapped=wrapped, **kwargs):
                if active_adapter not in _module.modules_to_save:
                    return _module.original_module(x, *args, **kwargs)
                return _wrapped(x, active_adapter, *args, **kwargs)

            module._forward_wrapped_mixed_batch = forward
            module._rows_without_copy = True
            fixed += 1
    return fixed

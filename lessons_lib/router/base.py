"""What every router shares: the labels, the decision record, input checks and how a router folder is saved."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .. import domains
from ..i18n import tr

GENERAL = "general"
BASE_ADAPTER = "__base__"


def course_labels() -> tuple[str, ...]:
    """Every registered domain (lessons_lib.domains), then "general": the course routers' label set."""
    return (*domains.names(), GENERAL)


def __getattr__(name: str):
    if name == "LABELS":  # the registry's labels now, so a newly registered domain is included
        return course_labels()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def label_to_adapter(label: str) -> str:
    """The PEFT adapter name for a label: "general" is the bare base model (`"__base__"` in mixed batches)."""
    if not isinstance(label, str) or not label:
        raise ValueError(
            tr(
                en=f"A label must be a non-empty string, got {label!r}.",
                ru=f"Метка должна быть непустой строкой, получено {label!r}.",
            )
        )
    return BASE_ADAPTER if label == GENERAL else label


@dataclass(frozen=True)
class RouteDecision:
    """The chosen label, a score per label (higher = more likely) and why it was chosen."""

    label: str
    scores: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    @property
    def adapter(self) -> str:
        """The adapter name to generate with."""
        return label_to_adapter(self.label)


def check_text(text: str) -> str:
    """Return `text` stripped, or raise ValueError if it is not a non-empty string."""
    if not isinstance(text, str):
        raise ValueError(
            tr(
                en=f"A router needs a prompt string, got {type(text).__name__}.",
                ru=f"Маршрутизатору нужен промпт-строка, получено {type(text).__name__}.",
            )
        )
    stripped = text.strip()
    if not stripped:
        raise ValueError(
            tr(
                en="Empty prompt: a router needs some text to decide on; type a request first.",
                ru="Пустой промпт: маршрутизатору нужен текст, чтобы выбрать адаптер; сначала введите запрос.",
            )
        )
    return stripped


class Router:
    """Base class: subclasses set `labels` and implement `_route_checked` (or `_route_many`)."""

    labels: tuple[str, ...] = ()  # each router sets its own

    def route(self, text: str) -> RouteDecision:
        """Choose a label for one prompt."""
        return self._route_many([check_text(text)])[0]

    def route_batch(self, texts: Sequence[str]) -> list[RouteDecision]:
        """Choose a label for each prompt (checks every prompt first, so a bad one fails before any work)."""
        if isinstance(texts, str):
            raise ValueError(
                tr(
                    en="route_batch takes a list of prompts; use route(text) for a single prompt.",
                    ru="route_batch принимает список промптов; для одного промпта вызовите route(text).",
                )
            )
        checked = [check_text(t) for t in texts]
        return self._route_many(checked) if checked else []

    def _route_many(self, texts: list[str]) -> list[RouteDecision]:
        return [self._route_checked(t) for t in texts]

    def _route_checked(self, text: str) -> RouteDecision:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.labels})"


# ---------------------------------------------------------------- saving a router folder whole
def check_router_folder(folder: str | Path, files: Collection[str]) -> None:
    """Refuse (FileExistsError) a `folder` holding anything but a router's `files`: a save replaces it whole."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(
            tr(
                en=f"{folder} is a file: a router is saved as a folder; pick another path.",
                ru=f"{folder} — файл: маршрутизатор сохраняется папкой; выберите другой путь.",
            )
        )
    from ..storage import settle_leftovers

    settle_leftovers(folder)
    foreign = sorted(p.name for p in folder.iterdir() if not _router_file(p.name, files)) if folder.is_dir() else []
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(
            tr(
                en=f"{folder} holds more than a router ({shown}), and saving a router replaces the whole folder. "
                f"Save it into a folder of its own (e.g. {folder / 'router'}), or move those out first.",
                ru=f"В {folder} лежит не только маршрутизатор ({shown}), а сохранение маршрутизатора заменяет папку "
                f"целиком. Сохраните его в отдельную папку (например, {folder / 'router'}) или сначала уберите "
                "оттуда лишнее.",
            )
        )


def _router_file(name: str, files: Collection[str]) -> bool:
    """True for one of a router's `files`, or what a killed files.write_text_atomic left (`.NAME.XXXX.writing`)."""
    return name in files or (name.startswith(".") and name.endswith(".writing"))


@contextmanager
def router_folder(folder: str | Path, files: Collection[str]) -> Iterator[Path]:
    """Yield an empty staging folder to write a router's `files` into; it then replaces `folder` in one swap.

    A kill at any moment leaves the old router or the new one, never new weights beside an old config.
    """
    from ..storage import replacing_folder

    check_router_folder(folder, files)
    with replacing_folder(folder) as staging:
        yield staging

"""The course domains in one registry: each entry names its data generator, scorer, router keywords, colour and
held-out files, and every module that lists domains (data, evaluation, routers, widgets, adapters) reads it here.

Adding a domain is one `register(Domain(...))` call (the built-in ones are at the bottom of this file). Callables
may be given as "module:attribute" strings, resolved on first use, so importing this module imports nothing else
and the owning modules (lessons_lib.data, lessons_lib.evaluate) can import it without a cycle.

    with registered(Domain("sql", make=make_sql, scorer=score_sql, keywords=("sql", "select"))):
        examples("sql", 4)                      # a temporary domain, removed again on exit (for tests)
"""

from __future__ import annotations

import contextlib
import importlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

NAME_RULE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
RESERVED = ("general", "base", "auto", "mix", "router", "tools", "__base__")  # router label, server models, artifacts
DEFAULT_COLOR = "#999999"


def resolve(target: Callable | str) -> Callable:
    """The callable itself, or the one a "package.module:attribute" string names."""
    if callable(target):
        return target
    module, sep, attribute = str(target).partition(":")
    if not sep or not module or not attribute:
        raise ValueError(f"{target!r} is neither a callable nor a 'package.module:attribute' string.")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class Domain:
    """One domain: how its examples are made and scored, which words route to it, and how it is shown.

    `make(rng, lang, split) -> data.Example` and `scorer(output, expected) -> evaluate.Score` may be callables or
    "module:attribute" strings. `templates` (optional) holds extra router training parts per language:
    {lang: (openers, tasks, details)}; without it the router trains on the domain's own prompts (the course
    domains' templates are PARTS and TOPICS in lessons_lib/router/data.py).
    `heldout_files` are paths under assets/ with hand-written held-out prompts of this domain.
    """

    name: str
    make: Callable | str
    scorer: Callable | str
    keywords: tuple[str, ...]
    color: str = DEFAULT_COLOR
    templates: Mapping[str, tuple] | None = None
    heldout_files: tuple[str, ...] = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_RULE.match(self.name):
            raise ValueError(
                f"Domain name {self.name!r} must be lowercase letters, digits and '_' (at most 32, "
                "starting with a letter), e.g. 'sql': it becomes an adapter and a router label."
            )
        if self.name in RESERVED:
            raise ValueError(f"{self.name!r} is reserved ({', '.join(RESERVED)}); choose another domain name.")
        if isinstance(self.keywords, str) or not any(w and w.strip() for w in self.keywords):
            raise ValueError(f"Domain {self.name!r} needs router keywords as a tuple of words, e.g. ('sql', 'select').")
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "heldout_files", tuple(self.heldout_files))

    def generate(self, rng, lang: str, split: str):
        """One example of this domain (calls `make`)."""
        return resolve(self.make)(rng, lang, split)

    def score(self, output: str, expected: dict):
        """The verdict on one answer (calls `scorer`)."""
        return resolve(self.scorer)(output, expected)


_REGISTRY: dict[str, Domain] = {}


def register(domain: Domain, replace: bool = False) -> Domain:
    """Add `domain` to the registry (order of registration = order everywhere); returns it."""
    if not isinstance(domain, Domain):
        raise TypeError(f"register() takes a Domain(...), got {type(domain).__name__}.")
    if domain.name in _REGISTRY and not replace:
        raise ValueError(f"Domain {domain.name!r} is already registered; pass replace=True to redefine it.")
    _REGISTRY[domain.name] = domain
    return domain


def unregister(name: str) -> Domain:
    """Remove a domain from the registry; returns its entry."""
    return _REGISTRY.pop(get(name).name)


@contextlib.contextmanager
def registered(domain: Domain) -> Iterator[Domain]:
    """Register `domain` for the duration of a `with` block (or a pytest fixture), then remove it again."""
    register(domain)
    try:
        yield domain
    finally:
        _REGISTRY.pop(domain.name, None)


def get(name: str) -> Domain:
    """The registry entry of `name`; ValueError listing the known domains otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown domain {name!r}; the course domains are {', '.join(_REGISTRY)}.") from None


def names() -> tuple[str, ...]:
    """The registered domain names, in registration order."""
    return tuple(_REGISTRY)


def entries() -> tuple[Domain, ...]:
    """The registered domains, in registration order."""
    return tuple(_REGISTRY.values())


def keywords() -> dict[str, tuple[str, ...]]:
    """{domain: router keywords}: the keyword router's default rules."""
    return {d.name: d.keywords for d in _REGISTRY.values()}


def color(name: str, default: str = DEFAULT_COLOR) -> str:
    """The display colour of a domain (plots, router bars); `default` for anything else."""
    entry = _REGISTRY.get(name)
    return entry.color if entry is not None else default


def __getattr__(name: str):
    if name == "DOMAINS":  # always the current registry, so a domain registered later shows up too
        return names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# ---------------------------------------------------------------- the course's domains
# Keywords: the original course's rules (first four stems of each list), extended to English and Russian.
# Stems are matched as lowercase substrings, so "функци" matches "функция", "функцию", "функции".
register(
    Domain(
        "json",
        make="lessons_lib.data:make_json",
        scorer="lessons_lib.evaluate:score_json",
        keywords=("json", "схем", "структур", "api", "schema", "structured", "key-value", "ключ", "поля", "fields"),
        color="#4c72b0",
        heldout_files=("natural/json.jsonl",),
    )
)
register(
    Domain(
        "coding",
        make="lessons_lib.data:make_coding",
        scorer="lessons_lib.evaluate:score_coding",
        keywords=(
            "код",
            "функци",
            "bug",
            "рефакторинг",
            "code",
            "function",
            "python",
            "refactor",
            "script",
            "скрипт",
            "баг",
        ),
        color="#55a868",
        heldout_files=("natural/coding.jsonl",),
    )
)
register(
    Domain(
        "support",
        make="lessons_lib.data:make_support",
        scorer="lessons_lib.evaluate:score_support",
        keywords=(
            "помощь",
            "ошибк",
            "не работа",
            "поддержка",
            "help",
            "error",
            "not working",
            "support",
            "refund",
            "возврат",
            "заказ",
            "order",
        ),
        color="#c44e52",
        heldout_files=("natural/support.jsonl",),
    )
)

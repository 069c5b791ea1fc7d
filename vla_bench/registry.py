"""Name -> object registries with helpful errors for unknown names."""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from vla_bench.errors import VlaBenchError

T = TypeVar("T")


def unknown_name_message(kind: str, name: str, known: list[str]) -> str:
    """One-line message for an unknown name, listing the known ones and the closest match."""
    message = f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}"
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        message += f" (did you mean {close[0]!r}?)"
    return message


def import_modules(name: str) -> None:
    """Import module `name`; when it is a package, also every submodule directly inside it."""
    module = importlib.import_module(name)
    for info in pkgutil.iter_modules(getattr(module, "__path__", [])):
        if not info.name.startswith("_"):
            importlib.import_module(f"{name}.{info.name}")


class Registry(Generic[T]):
    """A named collection; `get` raises VlaBenchError naming the known entries.

    `modules` names the modules (or packages, meaning every module directly inside them) whose import
    registers the entries. They are imported on the first lookup, so a registry is complete wherever
    it is read, whatever the process imported before.
    """

    def __init__(self, kind: str, modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.modules = modules
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._loaded = not modules
        self._loading = False

    def _load(self) -> None:
        """Import the registering modules once (a lookup made while they import sees what is there)."""
        if self._loaded or self._loading:
            return
        self._loading = True
        try:
            for name in self.modules:
                import_modules(name)
            self._loaded = True
        finally:
            self._loading = False

    def add(self, name: str, item: T, aliases: tuple[str, ...] = ()) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._items[name] = item
        for alias in aliases:
            self._aliases[alias] = name
        return item

    def register(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator form of `add`."""

        def decorator(item: T) -> T:
            return self.add(name, item, aliases)

        return decorator

    def canonical(self, name: str) -> str:
        self._load()
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise VlaBenchError(unknown_name_message(self.kind, name, list(self._items)))

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self) -> list[str]:
        self._load()
        return list(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(self._items)

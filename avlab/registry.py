"""One small registry behind methods, models and tasks (timm's ``@register_model`` pattern).

A registry maps names to classes or constructors. Registration happens where the thing is
defined, so adding a method or a task is adding a file, never editing a list. A registry may name
a *discovery* package: the first lookup imports it, and the package's modules register
themselves. That lets the one training loop find the task of a run by name without importing
any task module (imports point down only; discovery is a plugin lookup, like entry points).
"""
from __future__ import annotations

import importlib
from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, discover: str | None = None):
        self.kind, self._discover = kind, discover
        self._items: dict[str, T] = {}
        self._discovered = discover is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@METHODS.register("cid")``; the object gets a ``name`` attribute where it can."""
        def wrap(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            self._items[name] = obj
            return obj
        return wrap

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for plug-ins registered temporarily, e.g. by a test)."""
        self._items.pop(name, None)

    def _ensure_discovered(self) -> None:
        if not self._discovered:
            self._discovered = True  # before the import: the package registers into us
            importlib.import_module(self._discover)

    def get(self, name: str) -> T:
        self._ensure_discovered()
        if name not in self._items:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {', '.join(sorted(self._items)) or 'none'}")
        return self._items[name]

    def names(self) -> list[str]:
        self._ensure_discovered()
        return sorted(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(n, self._items[n]) for n in self.names()]

    def values(self) -> list[T]:
        return [self._items[n] for n in self.names()]

    def __contains__(self, name: object) -> bool:
        self._ensure_discovered()
        return name in self._items

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


METHODS: Registry = Registry("method", discover="avlab.methods")
MODELS: Registry = Registry("model", discover="avlab.models")
TASKS: Registry = Registry("task", discover="avlab.tasks")

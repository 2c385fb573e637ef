"""Named building blocks a run picks by name: backbones, heads, weightings, datasets.

Each kind is one Registry: name -> the thing that builds it, plus a one-line summary. Config
keys and dataset specs are looked up here, `mtl-split list` prints every registry, and the
tests run over every registered name, so adding a head or a dataset is one decorator in its
own module and nothing else to edit. Plain Python: listing needs no torch.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import TrainingError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    value: T
    summary: str


class Registry(Generic[T]):
    """kind: what one entry is ("head"); chosen_by: where a user names one ("model.head")."""

    def __init__(self, kind: str, chosen_by: str) -> None:
        self.kind, self.chosen_by = kind, chosen_by
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, value: T, summary: str) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = Entry(name, value, summary)
        return value

    def register(self, name: str, summary: str) -> Callable[[T], T]:
        """Decorator form of add()."""
        return lambda value: self.add(name, value, summary)

    def get(self, name: str) -> T:
        """The entry's value; a TrainingError naming every choice for an unknown name."""
        if name not in self._entries:
            raise TrainingError(f"unknown {self.kind} {name!r} ({self.chosen_by}): use one of {', '.join(self)}")
        return self._entries[name].value

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

"""What a plugin opens at start-up and closes at shutdown, and the answer while it is not
open: every stateful plugin needs the same three moves, so they are written once."""

from __future__ import annotations

from typing import Generic, TypeVar

from weaver.errors import Problem, Unavailable

T = TypeVar("T")


class Opened(Generic[T]):
    """Holds a plugin's client or pool between ``weaver_startup`` and ``weaver_shutdown``.

    ``get()`` before start-up succeeded (a malformed URL, a failed start) raises
    ``unavailable`` — a 503 naming what is missing, never a ``None`` deep in a hook.
    """

    def __init__(self, what: str, unavailable: type[Problem] = Unavailable) -> None:
        self._what = what
        self._unavailable = unavailable
        self._value: T | None = None

    def open(self, value: T) -> T:
        self._value = value
        return value

    def get(self) -> T:
        if self._value is None:
            raise self._unavailable(f"{self._what} is not open")
        return self._value

    def take(self) -> T | None:
        """The value, for closing; afterwards ``get()`` refuses again."""
        value, self._value = self._value, None
        return value

"""JSON for domain records, for stores that keep them as documents."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import TypeAdapter

T = TypeVar("T")


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


def dumps(value: Any, kind: Any | None = None) -> str:
    """Serialise a dataclass record (or a list of them) to compact JSON."""
    adapter = _adapter(kind if kind is not None else type(value))
    return adapter.dump_json(value).decode()


def loads(kind: type[T], text: str | bytes) -> T:
    result: T = _adapter(kind).validate_json(text)
    return result


def to_jsonable(value: Any, kind: Any | None = None) -> Any:
    """A dataclass record as JSON-native Python values (for responses)."""
    return _adapter(kind if kind is not None else type(value)).dump_python(value, mode="json")


def from_jsonable(kind: type[T], value: Any) -> T:
    """The record `to_jsonable` made ``value`` from."""
    result: T = _adapter(kind).validate_python(value)
    return result

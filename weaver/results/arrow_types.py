"""Engine column types as Arrow types, and a batch's values as Arrow arrays.

Engines name types their own way; the names are read case-insensitively:

| engine type names                                            | Arrow type               |
| ------------------------------------------------------------ | ------------------------ |
| ``tinyint``                                                  | int8                     |
| ``smallint``, ``int2``                                       | int16                    |
| ``integer``, ``int``, ``int4``, ``bigint``, ``int8``         | int64 [1]                |
| ``real``, ``double``, ``double precision``, ``float``,       | float64 [2]              |
| ``float4``, ``float8``, ``number``                           |                          |
| ``decimal(p,s)``, ``numeric(p,s)``, ``decimal(p)``           | decimal128(p, s) [3]     |
| ``decimal``, ``numeric`` (no precision)                      | decimal128(38, s) [3]    |
| ``boolean``, ``bool``                                        | bool                     |
| ``date``                                                     | date32                   |
| ``time``, ``time(p)``                                        | time64(us)               |
| ``timestamp``, ``timestamp(p)`` (without time zone)          | timestamp(us)            |
| ``timestamp(p) with time zone``, ``timestamptz``             | timestamp(us, UTC)       |
| ``datetime``                                                 | either of the two [4]    |
| ``blob``, ``bytea``, ``binary``, ``varbinary``               | binary                   |
| anything else: ``text``, ``varchar(n)``, ``char(n)``,        | utf8 [5]                 |
| ``uuid``, ``json``, ``array(…)``, ``map(…)``, ``row(…)``,     |                          |
| ``interval …``, ``time with time zone``, ``null``             |                          |

[1] SQLite and MindsDB say ``integer`` of 64-bit values, so it is never narrowed to
Trino's 32 bits. A value beyond int64 does not fit: an engine that has such integers
declares the column ``numeric``/``decimal(38,0)``.
[2] Trino's ``real`` is 32-bit, SQLite's 64-bit; float64 holds both exactly.
[3] decimal256 for a precision from 39 to 76, utf8 beyond. Without a precision:
decimal128(38, s), the scale s the largest among the first batch's values (0 if it has
none); a later value with more decimal places, or more than 38 digits, does not fit.
[4] MindsDB says ``datetime`` whether or not its values carry an offset: the first
non-null value of the first batch decides.
[5] A string as it is, any other value as its JSON text: what CSV shows. ``null`` (the
column was all NULL in the engine's first rows) is utf8 too, whatever comes later.

Values arrive either as the engine produced them (`Decimal`, `datetime`, `bytes`, …) or
as `jsonable` made them for the result store (``"12.50"``, ISO 8601 text, base64); both
give the same array. A value that its column's type cannot hold raises `ValueDoesNotFit`
instead of being coerced: pyarrow would truncate a float to an integer, take a naive
time as UTC, or the UTF-8 of a string as bytes.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Literal, Protocol

import pyarrow as pa

from weaver.errors import EngineFailed
from weaver.results.columns import NoneType, kinds, text_column

MAX_DECIMAL128_PRECISION = 38
MAX_DECIMAL256_PRECISION = 76


class ValueDoesNotFit(EngineFailed):
    """A value that its column's Arrow type cannot hold: the engine answered a value its
    own column type does not describe (SQLite's values need not match any type)."""

    type_slug = "value-does-not-fit"


class ArrowColumn(Protocol):
    @property
    def arrow_type(self) -> pa.DataType: ...

    def array(self, values: Sequence[Any]) -> pa.Array[Any]: ...


class TextColumn:
    arrow_type = pa.string()

    def array(self, values: Sequence[Any]) -> pa.Array[Any]:
        return pa.array(text_column(values), type=self.arrow_type)


def _misfit(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} {repr(value)[:40]}")


_FLOAT_WORDS = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def _float(value: Any) -> Any:
    # `jsonable` writes NaN and the infinities as these words.
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return _FLOAT_WORDS[value]
    return _misfit(value)


def _decimal(value: Any) -> Any:
    if isinstance(value, str):
        number = Decimal(value)
        if number.is_finite():
            return number
    return _misfit(value)


def _date(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else _misfit(value)


def _time(value: Any) -> Any:
    return time.fromisoformat(value) if isinstance(value, str) else _misfit(value)


def _datetime(value: Any) -> Any:
    if isinstance(value, str):
        return datetime.fromisoformat(value)
    # A date in a timestamp column (MindsDB mixes them) is its midnight, as its text is.
    if type(value) is date:
        return datetime(value.year, value.month, value.day)
    return _misfit(value)


def _binary(value: Any) -> Any:
    if isinstance(value, str):
        return base64.b64decode(value, validate=True)
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return _misfit(value)


def _no_zones(values: Sequence[Any]) -> None:
    if any(v.utcoffset() is not None for v in values if v is not None):
        raise ValueError("a value with a time zone in a column without one")


def _zones(values: Sequence[Any]) -> None:
    if any(v.utcoffset() is None for v in values if v is not None):
        raise ValueError("a value without a time zone in a column with one")


def _naive_times(values: Sequence[Any]) -> None:
    if any(v.tzinfo is not None for v in values if v is not None):
        raise ValueError("a time of day with a time zone in a column without one")


@dataclass(frozen=True, slots=True)
class TypedColumn:
    """``native``: the Python types pyarrow takes as they are for ``arrow_type``;
    ``parse`` turns any other value into one of them or raises; ``check`` looks at the
    values pyarrow would take without complaint but not as meant."""

    arrow_type: pa.DataType
    native: frozenset[type]
    parse: Callable[[Any], Any] = _misfit
    check: Callable[[Sequence[Any]], None] | None = None

    def array(self, values: Sequence[Any]) -> pa.Array[Any]:
        if not kinds(values) <= self.native:
            values = [self.parse(v) if type(v) not in self.native else v for v in values]
        if self.check is not None:
            self.check(values)
        return pa.array(values, type=self.arrow_type)


def _native(*types: type) -> frozenset[type]:
    return frozenset({NoneType, *types})


def _timestamp(zoned: bool) -> TypedColumn:
    if zoned:
        return TypedColumn(pa.timestamp("us", tz="UTC"), _native(datetime), _datetime, _zones)
    return TypedColumn(pa.timestamp("us"), _native(datetime), _datetime, _no_zones)


def _decimal_column(precision: int, scale: int) -> ArrowColumn:
    if not 0 <= scale <= precision or precision > MAX_DECIMAL256_PRECISION:
        return TextColumn()
    arrow_type = (
        pa.decimal128(precision, scale)
        if precision <= MAX_DECIMAL128_PRECISION
        else pa.decimal256(precision, scale)
    )
    return TypedColumn(arrow_type, _native(Decimal, int), _decimal)


_INT64 = TypedColumn(pa.int64(), _native(int))
_FIXED: dict[str, ArrowColumn] = {
    "tinyint": TypedColumn(pa.int8(), _native(int)),
    "smallint": TypedColumn(pa.int16(), _native(int)),
    "int2": TypedColumn(pa.int16(), _native(int)),
    **dict.fromkeys(("integer", "int", "int4", "bigint", "int8"), _INT64),
    **dict.fromkeys(
        ("real", "double", "double precision", "float", "float4", "float8", "number"),
        TypedColumn(pa.float64(), _native(float, int), _float),
    ),
    **dict.fromkeys(("boolean", "bool"), TypedColumn(pa.bool_(), _native(bool))),
    "date": TypedColumn(pa.date32(), _native(date), _date),
    **dict.fromkeys(
        ("blob", "bytea", "binary", "varbinary"), TypedColumn(pa.binary(), _native(bytes), _binary)
    ),
    "timestamptz": _timestamp(zoned=True),
}
# Kinds whose column the first batch's values decide.
ValueDecided = Literal["decimal", "datetime"]
_DECIMAL = re.compile(r"(?:decimal|numeric)(?:\((\d+)(?:,(\d+))?\))?")
_TIME = re.compile(r"time(?:\(\d+\))?(?: without time zone)?")
_TIMESTAMP = re.compile(r"timestamp(?:\(\d+\))?( with time zone| without time zone)?")
_SIZED = re.compile(r"(\w+)\(\d+\)")


@functools.lru_cache(maxsize=256)
def _declared(type_name: str) -> ArrowColumn | ValueDecided:
    """The column for a type name that says all it takes, else its `ValueDecided` kind."""
    # One spelling per name: `decimal(38, 2)` is `decimal(38,2)`, `TIMESTAMP(3)  WITH TIME
    # ZONE` is `timestamp(3) with time zone`.
    name = re.sub(r"\s*([(,])\s*|\s+(?=\))", r"\1", " ".join(type_name.lower().split()))
    if name in _FIXED:
        return _FIXED[name]
    if decimal := _DECIMAL.fullmatch(name):
        precision, scale = decimal.groups()
        if precision is None:
            return "decimal"
        return _decimal_column(int(precision), int(scale or 0))
    if _TIME.fullmatch(name):
        return TypedColumn(pa.time64("us"), _native(time), _time, _naive_times)
    if timestamp := _TIMESTAMP.fullmatch(name):
        return _timestamp(zoned=timestamp.group(1) == " with time zone")
    if name == "datetime":
        return "datetime"
    if (sized := _SIZED.fullmatch(name)) and sized.group(1) in ("binary", "varbinary"):
        return _FIXED["binary"]
    return TextColumn()


def _scale(value: Any) -> int:
    exponent = value.as_tuple().exponent if isinstance(value, Decimal) else 0
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def arrow_column(type_name: str, first_values: Sequence[Any]) -> ArrowColumn:
    """The column for engine type ``type_name``; ``first_values`` are the column's
    values in the first batch (empty if there are no rows), for the types they decide."""
    declared = _declared(type_name)
    if not isinstance(declared, str):
        return declared
    present = [v for v in first_values if v is not None]
    if declared == "decimal":
        numbers = [_decimal(v) if isinstance(v, str) else v for v in present]
        scale = max(map(_scale, numbers), default=0)
        return _decimal_column(MAX_DECIMAL128_PRECISION, min(scale, MAX_DECIMAL128_PRECISION))
    first = present[0] if present else None
    if first is not None and not isinstance(first, datetime):
        first = _datetime(first)
    return _timestamp(zoned=first is not None and first.utcoffset() is not None)

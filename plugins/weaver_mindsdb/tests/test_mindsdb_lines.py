"""Reading MindsDB's jsonlines answers: lines split anywhere, long lines parsed as they
arrive, and what is not an answer refused."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
import pytest
from weaver_mindsdb.lines import AnswerLines, EmbeddedError, MalformedAnswer

HEADER = {"type": "table", "column_names": ["id", "label", "amount"]}


def answer(*lines: Any) -> bytes:
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def rows(first: int, count: int) -> list[list[Any]]:
    return [[n, f"label-{n}", n * 1.25] for n in range(first, first + count)]


async def read(lines: AnswerLines) -> list[list[list[Any]]]:
    return [batch async for batch in lines.batches()]


def flat(batches: Iterable[list[list[Any]]]) -> list[list[Any]]:
    return [row for batch in batches for row in batch]


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 16])
async def test_lines_split_anywhere_give_one_batch_per_line(chunk: int) -> None:
    body = answer(HEADER, rows(0, 3), rows(3, 2))
    lines = AnswerLines(chunks(body, chunk))
    assert await lines.first() == HEADER
    assert await read(lines) == [rows(0, 3), rows(3, 2)]


@pytest.mark.parametrize("chunk", [1, 5, 100, 1 << 16])
async def test_a_line_longer_than_the_buffer_comes_in_batches(chunk: int) -> None:
    # One line of 50 rows (as MindsDB sends a plan it finishes itself), then an ordinary one.
    body = answer(HEADER, rows(0, 50), rows(50, 2))
    lines = AnswerLines(chunks(body, chunk), line_bytes=64, batch_rows=8)
    assert await lines.first() == HEADER
    batches = await read(lines)
    assert flat(batches) == rows(0, 52)
    assert all(len(batch) <= 8 for batch in batches[:-1])
    assert len(batches) > 2


async def test_a_long_last_line_without_newline_is_read() -> None:
    body = answer(HEADER) + orjson.dumps(rows(0, 20))
    lines = AnswerLines(chunks(body, 10), line_bytes=32, batch_rows=6)
    await lines.first()
    assert flat(await read(lines)) == rows(0, 20)


async def test_values_keep_their_json_types_on_both_paths() -> None:
    values = [[1, 2.5, None, True, "x", 2**63 - 1, [1, {"a": 2}]]]
    for line_bytes in (1 << 20, 16):
        lines = AnswerLines(chunks(answer(HEADER, values), 3), line_bytes=line_bytes)
        await lines.first()
        assert flat(await read(lines)) == values


async def test_an_empty_result_has_a_header_and_no_batches() -> None:
    lines = AnswerLines(chunks(answer(HEADER), 4))
    assert await lines.first() == HEADER
    assert await read(lines) == []


async def test_an_error_is_the_first_line() -> None:
    error = {"type": "error", "error_code": 0, "error_message": "Parameter is not set: p"}
    lines = AnswerLines(chunks(answer(error), 4))
    assert await lines.first() == error


async def test_an_object_where_rows_belong_is_an_embedded_error() -> None:
    error = {"type": "error", "error_code": 0, "error_message": "boom"}
    lines = AnswerLines(chunks(answer(HEADER, rows(0, 1), error), 8))
    await lines.first()
    with pytest.raises(EmbeddedError) as caught:
        await read(lines)
    assert str(caught.value) == "boom"


@pytest.mark.parametrize(
    ("body", "head_bytes"),
    [
        (b"", 1 << 20),  # nothing at all
        (b"not json\n", 1 << 20),
        (answer(["not", "an", "object"]), 1 << 20),
        (answer({"type": "table", "column_names": ["x" * 100]}), 32),  # header too long
    ],
)
async def test_what_is_not_an_answer_start_is_refused(body: bytes, head_bytes: int) -> None:
    with pytest.raises(MalformedAnswer):
        await AnswerLines(chunks(body, 16), head_bytes=head_bytes).first()


@pytest.mark.parametrize(
    "line",
    [
        b"[[1, 2], [3",  # cut off mid-line
        b"[[1, 2], 3]",  # not rows
        b"[[1, 2], [3, 4]]]",  # not JSON
    ],
)
@pytest.mark.parametrize("line_bytes", [1 << 20, 4])
async def test_broken_lines_are_refused(line: bytes, line_bytes: int) -> None:
    lines = AnswerLines(chunks(answer(HEADER) + line + b"\n", 3), line_bytes=line_bytes)
    await lines.first()
    with pytest.raises(MalformedAnswer):
        await read(lines)


async def test_a_row_over_its_bound_is_refused() -> None:
    huge = [[1, "x" * 5000]]
    lines = AnswerLines(chunks(answer(HEADER, huge), 100), line_bytes=64, row_bytes=1000)
    await lines.first()
    with pytest.raises(MalformedAnswer, match="larger than"):
        await read(lines)

"""The result encoders against the libraries they write with, on the same rows.

A temporary SQLite file holds 1,000,000 rows of six columns: an integer, a float, a
text, a text with commas and quotes, a timestamp as text, and an integer that is NULL
one time in ten. Each run reads them with ``fetchmany(5000)``, as the embedded engine
does, and writes every batch either straight with the library (the baseline: orjson
lines, ``csv.writer``, pyarrow record batches into a stream that only counts bytes) or
through the encoder `weaver.results.encoder_for` chooses for the media type.

Two measures: with the fetch on both sides, as the export goal counts (NDJSON and CSV
at least 50% and Arrow at least 70% of the baseline), and the encoding alone, on batches
fetched beforehand, which shows what the encoders themselves cost.

Rounds interleave baseline and encoder, the order swapped each round; times are the
process's CPU time, rows/s the median round's, and the ratio the median of the rounds'
ratios (encoder rows/s over baseline rows/s).

    python bench/bench_encoders.py [--rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import csv
import io
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from weaver.results import ResultSummary, encoder_for
from weaver.types import ResultColumn

BATCH_ROWS = 5000
SELECT = "SELECT id, x, name, note, at, sometimes FROM t"
# What the embedded engine reports for these columns: SQLite's storage classes.
COLUMNS = [
    ResultColumn("id", "integer"),
    ResultColumn("x", "real"),
    ResultColumn("name", "text"),
    ResultColumn("note", "text"),
    ResultColumn("at", "text"),
    ResultColumn("sometimes", "integer"),
]
ARROW_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("x", pa.float64()),
        ("name", pa.string()),
        ("note", pa.string()),
        ("at", pa.string()),
        ("sometimes", pa.int64()),
    ]
)
FORMATS = {
    "ndjson": "application/x-ndjson",
    "csv": "text/csv",
    "arrow": "application/vnd.apache.arrow.stream",
}


def make_database(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE t (id INTEGER, x REAL, name TEXT, note TEXT, at TEXT, sometimes INTEGER)"
        )
        connection.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
            (
                (
                    i,
                    i * 0.25 + 0.1,
                    f"name-{i}",
                    f'note {i}, with "quotes", and commas',
                    f"2024-02-{i % 28 + 1:02d}T{i % 24:02d}:{i % 60:02d}:00+00:00",
                    None if i % 10 == 0 else i * 7,
                )
                for i in range(rows)
            ),
        )


Batches = Callable[[], Iterable[Sequence[tuple[Any, ...]]]]


def fetched(path: Path) -> Batches:
    def read() -> Iterator[list[tuple[Any, ...]]]:
        with sqlite3.connect(path) as connection:
            cursor = connection.execute(SELECT)
            while batch := cursor.fetchmany(BATCH_ROWS):
                yield batch

    return read


def in_memory(path: Path) -> Batches:
    batches = list(fetched(path)())
    return lambda: batches


def baseline_ndjson(batches: Batches) -> int:
    written = 0
    for batch in batches():
        # One growing buffer: joining a list of orjson's results is several times slower.
        lines = bytearray()
        for row in batch:
            lines += orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE)
        written += len(bytes(lines))
    return written


def baseline_csv(batches: Batches) -> int:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    written = 0
    for batch in batches():
        writer.writerows(batch)
        written += len(buffer.getvalue().encode())
        buffer.seek(0)
        buffer.truncate()
    return written


def baseline_arrow(batches: Batches) -> int:
    sink = pa.MockOutputStream()
    with pa.ipc.new_stream(sink, ARROW_SCHEMA) as writer:
        for batch in batches():
            arrays = [
                pa.array(values, type=field.type)
                for values, field in zip(zip(*batch, strict=True), ARROW_SCHEMA, strict=True)
            ]
            writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=ARROW_SCHEMA))
    return int(sink.size())


def through_encoder(media_type: str) -> Callable[[Batches], int]:
    def run(batches: Batches) -> int:
        encoder = encoder_for(media_type)
        written = len(encoder.start(COLUMNS))
        count = 0
        for batch in batches():
            written += len(encoder.rows(batch))
            count += len(batch)
        return written + len(encoder.finish(ResultSummary("bench", count, False, 0.0)))

    return run


BASELINES = {"ndjson": baseline_ndjson, "csv": baseline_csv, "arrow": baseline_arrow}


def timed(run: Callable[[Batches], int], batches: Batches) -> tuple[float, int]:
    # CPU time of this process: both sides run on one thread, and other processes on a
    # shared machine lengthen the wall clock of whichever side they happen to meet.
    started = time.process_time()
    written = run(batches)
    return time.process_time() - started, written


def compare(title: str, batches: Batches, rows: int, rounds: int) -> None:
    seconds: dict[tuple[str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    for round_number in range(rounds):
        for name, media_type in FORMATS.items():
            sides = [("baseline", BASELINES[name]), ("encoder", through_encoder(media_type))]
            for side, run in sides if round_number % 2 == 0 else sides[::-1]:
                elapsed, written = timed(run, batches)
                seconds.setdefault((name, side), []).append(elapsed)
                sizes[(name, side)] = written
    print(f"\n{title}")
    print(
        f"{'format':8} {'baseline rows/s':>16} {'encoder rows/s':>15} {'ratio':>6}  "
        f"{'rounds':18} {'baseline MB':>11} {'encoder MB':>10}"
    )
    for name in FORMATS:
        base, encoded = seconds[(name, "baseline")], seconds[(name, "encoder")]
        ratios = [b / e for b, e in zip(base, encoded, strict=True)]
        print(
            f"{name:8} {rows / statistics.median(base):16,.0f} "
            f"{rows / statistics.median(encoded):15,.0f} {statistics.median(ratios):6.2f}  "
            f"{' '.join(f'{r:.2f}' for r in ratios):18} "
            f"{sizes[(name, 'baseline')] / 1e6:11.1f} {sizes[(name, 'encoder')] / 1e6:10.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    rows, rounds = arguments.rows, arguments.rounds

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "bench.sqlite"
        make_database(path, rows)
        print(f"{rows:,} rows x {len(COLUMNS)} columns, batches of {BATCH_ROWS}, {rounds} rounds")
        fetch = statistics.median(
            timed(lambda b: sum(map(len, b())), fetched(path))[0] for _ in range(rounds)
        )
        print(f"fetch alone: {rows / fetch:,.0f} rows/s")
        compare("with the fetch (the export goal's measure)", fetched(path), rows, rounds)
        compare("encoding alone (batches fetched beforehand)", in_memory(path), rows, rounds)


if __name__ == "__main__":
    main()

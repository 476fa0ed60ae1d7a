"""What MindsDB's refusal of a tenant's query means: the caller's mistake (400) or the
engine's failure (502), with a message fit to show.

MindsDB 26.1 answers every error the same way (``type: error``, ``error_code: 0``) and
keeps to itself whether the source called it expected; only the text tells. The shapes
(``mindsdb.utilities.exception.format_db_error_message`` and the executor):

* ``An error occurred while executing a derived query on the external database …``,
  then ``Database Details`` (MindsDB's name for the datasource and its handler),
  ``Error:`` (the source's own message, indented) and ``Failed Query:`` (the statement as
  MindsDB rewrote it): the source refused; the source's message says whose fault;
* ``An error occurred while processing an internally generated query …`` (``Type:
  DuckDB``): a part MindsDB evaluates itself cannot be — the statement asks for
  something it does not support;
* ``The SQL statement cannot be parsed - <statement>: <reason>``;
* ``Parameter is not set: <name>``;
* ``Table '<db>.<table>' not found in the database …``: MindsDB has no such database;
* ``[<handler>/<name>]: …``, ``Can't connect to db: …``: the source's connection failed.

The detail keeps the source's message and drops MindsDB's preamble, the rewritten
statement and the source's ``LINE n:`` excerpts of it (they quote internal names, the
cursor and the gateway's tag), then `weaver_mindsdb.scrub` masks credentials and makes
names public.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass

from weaver.errors import EngineFailed, Problem, QueryFailed
from weaver.types import Datasource
from weaver_mindsdb.scrub import clean_message

EXTERNAL_PREAMBLE = "An error occurred while executing a derived query on the external database"
INTERNAL_PREAMBLE = "An error occurred while processing an internally generated query"
UNPARSEABLE = "The SQL statement cannot be parsed - "
PARAMETER_NOT_SET = "Parameter is not set: "
_TABLE_NOT_FOUND = re.compile(r"^Table '(?P<name>[^']*)' not found in the database")

# A source's messages for statements the caller got wrong: PostgreSQL's (SQLSTATE
# classes 42 and 22, as its server words them) and MySQL's (from its error reference;
# no MySQL server was at hand to see them through MindsDB).
_CALLER_MISTAKES = re.compile(
    "|".join(
        (
            # PostgreSQL
            r"^(relation|column|function|operator|schema|type|table) .*does not exist",
            r"^operator does not exist",
            r"invalid input syntax for",
            r"invalid input value for",
            r"division by zero",
            r"^permission denied for",
            r"^syntax error at",
            r"is ambiguous",
            r"must appear in the GROUP BY clause",
            r"out of range",
            r"^cannot cast type",
            r"could not determine data type",
            r"^function .* is not unique",
            r"(aggregate|window) functions are not allowed",
            r"^argument of .* must be",
            r"value too long for type",
            r"invalid regular expression",
            r"cannot be matched",
            r"missing FROM-clause entry",
            r"invalid reference to FROM-clause entry",
            r"^subquery (must|has too)",
            r"^each UNION query must have the same number of columns",
            # MySQL
            r"^\(?\d{4}, .*doesn't exist",
            r"Unknown column",
            r"You have an error in your SQL syntax",
            r"command denied to user",
            r"Incorrect \w+ value",
        )
    ),
    re.IGNORECASE,
)
# A "does not exist" that is about the connection, not the statement.
_CONNECTION_OBJECTS = re.compile(r'^(database|role) "', re.IGNORECASE)
# The source's excerpt of the statement and its caret line.
_EXCERPT = re.compile(r"^\s*(LINE \d+:|QUERY:|\^)")


@dataclass(frozen=True, slots=True)
class EngineMessage:
    """One of MindsDB's messages, taken apart (`read_message`)."""

    text: str
    # True: the source refused a derived query; False: MindsDB's own DuckDB did; None:
    # neither shape.
    external: bool | None = None
    database: str | None = None
    handler: str | None = None
    error: str | None = None


def read_message(text: str) -> EngineMessage:
    """``text`` split into MindsDB's parts, where it has the derived-query shape."""
    if text.startswith(EXTERNAL_PREAMBLE):
        external: bool | None = True
    elif text.startswith(INTERNAL_PREAMBLE):
        external = False
    else:
        return EngineMessage(text)
    sections = _sections(text)
    details = sections.get("Database Details", "")
    name = re.search(r"^- Name: (.*)$", details, re.MULTILINE)
    handler = re.search(r"^- Type: (.*)$", details, re.MULTILINE)
    error = sections.get("Error")
    return EngineMessage(
        text,
        external=external,
        database=name[1].strip() if name else None,
        handler=handler[1].strip() if handler else None,
        error=textwrap.dedent(error).strip() if error is not None else None,
    )


def _sections(text: str) -> dict[str, str]:
    """``Heading:`` blocks, separated by blank lines, by heading."""
    sections: dict[str, str] = {}
    for block in text.split("\n\n"):
        heading, _, body = block.partition(":\n")
        if body and "\n" not in heading:
            sections[heading.strip()] = body
    return sections


def source_error(error: str) -> str:
    """The source's message without its excerpts of the rewritten statement."""
    lines = [line for line in error.splitlines() if line.strip() and not _EXCERPT.match(line)]
    return " ".join(line.strip() for line in lines)


def is_callers_mistake(error: str) -> bool:
    """Whether a source's message says the statement was wrong (not the source)."""
    first = error.strip().splitlines()[0] if error.strip() else ""
    return bool(_CALLER_MISTAKES.search(first)) and not _CONNECTION_OBJECTS.match(first)


def query_problem(
    message: str,
    *,
    statement: str = "",
    datasources: Iterable[Datasource] = (),
    secrets: Iterable[str] = (),
) -> Problem:
    """The problem for MindsDB's refusal ``message`` of ``statement`` (the text sent)."""
    datasources = list(datasources)

    def clean(text: str) -> str:
        return clean_message(text, datasources=datasources, secrets=secrets)

    parsed = read_message(message)
    if parsed.external is True and parsed.error is not None:
        where = parsed.database or "<datasource>"
        if parsed.handler:
            where += f" ({parsed.handler})"
        detail = clean(f"{where}: {source_error(parsed.error)}")
        if is_callers_mistake(parsed.error):
            return QueryFailed(detail)
        return EngineFailed(detail)
    if parsed.external is False and parsed.error is not None:
        reason = source_error(parsed.error.split("\n\n")[0])
        return QueryFailed(clean(f"the query engine cannot evaluate this statement: {reason}"))
    if message.startswith(UNPARSEABLE):
        reason = message[len(UNPARSEABLE) :]
        if statement and reason.startswith(statement):
            reason = reason[len(statement) :].lstrip(": ")
        # The rest echoes the statement with a marker under the fault; it is MindsDB's
        # rewriting, not the tenant's text, so only the reason is kept.
        first = reason.splitlines()[0].rstrip(":") if reason.strip() else "syntax error"
        return QueryFailed(clean(f"the query engine could not parse the statement: {first}"))
    if message.startswith(PARAMETER_NOT_SET):
        name = message[len(PARAMETER_NOT_SET) :].strip()
        return QueryFailed(
            clean(f"query parameter {name} has no value: write values into the statement")
        )
    missing = _TABLE_NOT_FOUND.match(message)
    if missing is not None:
        known = {d.internal_name.lower() for d in datasources}
        if missing["name"].split(".")[0].lower() in known:
            # The datasource is registered, so MindsDB lost it: not the caller's doing.
            return EngineFailed(
                clean(
                    f"the query engine has lost datasource {missing['name'].split('.')[0]} "
                    "(it is recreated when the gateway restarts)"
                )
            )
        return QueryFailed(clean(f"table {missing['name']} not found"))
    return EngineFailed(clean(message))

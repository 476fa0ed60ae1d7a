"""`/api/v1/metadata/glossary`: business terms linked to columns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, field_validator

from weaver import codec
from weaver.api.models import Answer, Body
from weaver.api.paging import ItemList, ListQuery, page_of
from weaver.keys import HOST, principal_of
from weaver.responses import json_response
from weaver.routing import RouteTable
from weaver.types import GlossaryTerm
from weaver.workflows import glossary as workflow

routes = RouteTable()
PREFIX = "/api/v1/metadata/glossary"

# `datasource.schema.table.column`; names are identifiers, not free text.
COLUMN_PATH = r"^[a-z][a-z0-9_]*(\.[^.\s]+){3}$"
# Declared in the models rather than checked after them, so that /openapi.json says what
# is taken: a client (or a fuzzer) built from it sends nothing the API then refuses.
NotBlank = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
ColumnPath = Annotated[str, Field(pattern=COLUMN_PATH)]


class GlossaryTermIn(Body):
    term: NotBlank
    definition: str = Field(min_length=1, max_length=10_000)
    synonyms: list[NotBlank] = Field(default_factory=list, max_length=100)
    columns: list[ColumnPath] = Field(default_factory=list, max_length=1000)

    @field_validator("term")
    @classmethod
    def _trimmed(cls, value: str) -> str:
        return value.strip()

    @field_validator("synonyms", "columns")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(item.strip() for item in value))


class GlossaryQuery(ListQuery):
    q: str | None = Field(None, max_length=200)


class GlossaryTermOut(Answer):
    id: str
    term: str
    definition: str
    synonyms: list[str]
    columns: list[str]
    created_at: datetime
    updated_at: datetime


def render(term: GlossaryTerm) -> dict[str, Any]:
    body: dict[str, Any] = codec.to_jsonable(term)
    del body["tenant_id"]
    return body


@routes.route(
    "POST",
    PREFIX,
    summary="Define a term",
    tag="glossary",
    role="editor",
    body=GlossaryTermIn,
    response=GlossaryTermOut,
    status=201,
    errors=(409, 422),
    headers={"Location": "the term's URL"},
)
async def create_term(request: web.Request, body: GlossaryTermIn) -> web.StreamResponse:
    term = await workflow.create_term(
        request.app[HOST],
        principal_of(request).tenant_id,
        term=body.term,
        definition=body.definition,
        synonyms=body.synonyms,
        columns=body.columns,
    )
    return json_response(render(term), status=201, headers={"Location": f"{PREFIX}/{term.id}"})


@routes.route(
    "GET",
    PREFIX,
    summary="List or search terms",
    tag="glossary",
    role="viewer",
    query=GlossaryQuery,
    response=ItemList[GlossaryTermOut],
)
async def list_terms(request: web.Request, query: GlossaryQuery) -> web.StreamResponse:
    principal = principal_of(request)
    terms = await request.app[HOST].list_glossary_terms(
        principal.tenant_id, query.q or None, query.page()
    )
    return json_response(page_of(terms, query, lambda t: t.term.lower(), render))


async def _term_or_404(request: web.Request) -> GlossaryTerm:
    return await workflow.require_term(
        request.app[HOST], principal_of(request).tenant_id, request.match_info["term_id"]
    )


@routes.route(
    "GET",
    PREFIX + "/{term_id}",
    summary="One term",
    tag="glossary",
    role="viewer",
    response=GlossaryTermOut,
    errors=(404,),
)
async def get_term(request: web.Request) -> web.StreamResponse:
    return json_response(render(await _term_or_404(request)))


@routes.route(
    "PUT",
    PREFIX + "/{term_id}",
    summary="Replace a term",
    tag="glossary",
    role="editor",
    body=GlossaryTermIn,
    response=GlossaryTermOut,
    errors=(404, 409, 422),
)
async def replace_term(request: web.Request, body: GlossaryTermIn) -> web.StreamResponse:
    term = await workflow.replace_term(
        request.app[HOST],
        await _term_or_404(request),
        term=body.term,
        definition=body.definition,
        synonyms=body.synonyms,
        columns=body.columns,
    )
    return json_response(render(term))


@routes.route(
    "DELETE",
    PREFIX + "/{term_id}",
    summary="Remove a term",
    tag="glossary",
    role="editor",
    status=204,
    errors=(404,),
)
async def delete_term(request: web.Request) -> web.StreamResponse:
    await workflow.delete_term(
        request.app[HOST], principal_of(request).tenant_id, request.match_info["term_id"]
    )
    return web.Response(status=204)

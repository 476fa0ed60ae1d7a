"""A body's numbers are JSON numbers: ``"5"`` or ``true`` is a mistake, answered 422, in
every body the API takes (query strings are text by nature and stay lax)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tests.conftest import assert_problem
from weaver.app import RESOURCE_MODULES

BODY_MODELS = sorted(
    {route.body for module in RESOURCE_MODULES for route in module.routes.routes if route.body},
    key=lambda model: model.__name__,
)
NOT_NUMBERS = ("5", True, [5], {"value": 5})


def _is_numeric(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("type") in ("integer", "number") for option in options)


def numeric_fields(model: type[BaseModel]) -> list[str]:
    properties = model.model_json_schema()["properties"]
    return [name for name, schema in properties.items() if _is_numeric(schema)]


def test_the_walk_finds_the_numbers() -> None:
    # A walk that found no numeric field would pass the test below without checking.
    found = {model.__name__: numeric_fields(model) for model in BODY_MODELS}
    assert found["QueryRequest"] == ["limit", "timeout_seconds"]


@pytest.mark.parametrize(
    ("model", "field"),
    [(model, field) for model in BODY_MODELS for field in numeric_fields(model)],
    ids=lambda item: item if isinstance(item, str) else item.__name__,
)
@pytest.mark.parametrize("value", NOT_NUMBERS, ids=repr)
def test_no_body_takes_another_type_for_a_number(
    model: type[BaseModel], field: str, value: object
) -> None:
    with pytest.raises(ValidationError) as refused:
        model.model_validate({field: value})
    assert any(error["loc"] == (field,) for error in refused.value.errors())


@pytest.mark.parametrize(
    "body",
    [
        {"sql": "SELECT 1", "limit": "5"},
        {"sql": "SELECT 1", "limit": True},
        {"sql": "SELECT 1", "limit": 5.0},
        {"sql": "SELECT 1", "timeout_seconds": "2"},
        {"sql": "SELECT 1", "timeout_seconds": False},
    ],
)
async def test_query_numbers_must_be_json_numbers(
    client: Any, auth: Any, body: dict[str, Any]
) -> None:
    response = await client.post("/api/query", json=body, headers=auth(roles=["viewer"]))
    assert response.status == 422
    problem = await response.json()
    assert_problem(problem, 422)
    field = next(name for name in body if name != "sql")
    assert [error["loc"] for error in problem["errors"]] == [["body", field]]


async def test_query_numbers_of_either_kind_are_taken(client: Any, auth: Any) -> None:
    for body in ({"limit": 5, "timeout_seconds": 2}, {"timeout_seconds": 2.5}):
        response = await client.post(
            "/api/query", json={"sql": "SELECT 1", **body}, headers=auth(roles=["viewer"])
        )
        assert response.status == 200, await response.text()

"""The bases of request bodies and of responses.

A body is exactly what its route declares: no field more, and no value of another JSON
type taken for the declared one (``"5"`` or ``true`` is not a number). An answer is
exactly what its route declares (and so what ``/openapi.json`` says), no field more."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAnswer(BaseModel):
    """For answers that carry fields plugins add (health details)."""

    model_config = ConfigDict(extra="allow")

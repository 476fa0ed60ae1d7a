"""The base of every response model: what a handler answers must be exactly what its
route declares (and so what ``/openapi.json`` says), no field more."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OpenAnswer(BaseModel):
    """For answers that carry fields plugins add (health details)."""

    model_config = ConfigDict(extra="allow")

"""The base of every response model: the HTTP API's answers are documented field by field.

Each capability declares its answers next to the code that builds them (storebridge/payments/schemas.py,
storebridge/shipping/schemas.py, ...); routes name them in `response_model=`. The builders may keep
returning dicts: FastAPI validates each against its model, so a key the model does not declare is an
error in the tests rather than an undocumented field in production.

One style for every answer: times are ISO 8601 strings in UTC with their zone (`Timestamp`), money is
an integer in minor units beside its `currency`, and every list is a `Page`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

__all__ = ["Out", "Page", "Timestamp", "iso8601"]

T = TypeVar("T")


def iso8601(seconds: float) -> str:
    """`2026-12-03T10:26:08.123Z`: what every time in the API, the events and outbound webhooks reads as."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Stored as seconds since the epoch (a float column sorts and compares cheaply); answered as ISO 8601.
Timestamp = Annotated[
    float,
    PlainSerializer(iso8601, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-03T10:26:08.123Z"]}),
]


class Out(BaseModel):
    """A response body: exactly the fields declared (`additionalProperties: false` in the document)."""

    model_config = ConfigDict(extra="forbid")


class Page(Out, Generic[T]):
    """Every list: one page of `data`; while `has_more`, pass `next_cursor` back as `cursor` for the next."""

    data: list[T]
    has_more: bool
    next_cursor: str | None = Field(description="the `cursor` of the next page; null on the last one")

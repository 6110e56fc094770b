"""The base of every response model: the HTTP API's answers are documented field by field.

Each capability declares its answers next to the code that builds them (storebridge/payments/schemas.py,
storebridge/shipping/schemas.py, ...); routes name them in `response_model=`. The builders may keep
returning dicts: FastAPI validates each against its model, so a key the model does not declare is an
error in the tests rather than an undocumented field in production."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Out", "Timestamp"]

Timestamp = float  # seconds since the epoch (UTC), as every `*_at` field of the API


class Out(BaseModel):
    """A response body: exactly the fields declared (`additionalProperties: false` in the document)."""

    model_config = ConfigDict(extra="forbid")

"""What the shipping API accepts (validated: a 422 names the field); its event types are in shipping/events.py."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema, field_validator

__all__ = [
    "Address",
    "Parcel",
    "ShipmentItem",
    "CreateShipment",
    "BuyLabel",
]


_US_ZIP = re.compile(r"^\d{5}(-\d{4})?$")
# ASCII classes, not \s: regex engines (Python's, Rust's in pydantic, ECMA's in the document) disagree on
# which Unicode characters are white space.
_EMAIL = re.compile(r"^[^@\x00-\x20\x7f]+@[^@\x00-\x20\x7f]+\.[^@\x00-\x20\x7f]+$")


def _positive_decimal(value: Any) -> str:
    """A positive number (int, float or decimal string) as the decimal string Shippo wants."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a positive number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("must be a positive number") from None
    if not number.is_finite() or number <= 0:
        raise ValueError("must be a positive number")
    if number > 10000:
        raise ValueError("is larger than any parcel a carrier takes")
    return format(number.normalize(), "f")


# What the schema says of it: a number in (0, 10000], or a decimal string of one.
_DIMENSION_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0, "maximum": 10000},
        {
            "type": "string",
            "pattern": r"^(0*[1-9][0-9]{0,3}(\.[0-9]+)?|0*\.[0-9]*[1-9][0-9]*|10000(\.0+)?)$",
        },
    ]
}
Dimension = Annotated[str, BeforeValidator(_positive_decimal), WithJsonSchema(_DIMENSION_SCHEMA)]
_Text = Annotated[str, Field(min_length=1, max_length=100)]


class Address(BaseModel):
    """The guide's Address: Shippo's address fields."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: _Text
    company: str | None = Field(None, max_length=100)
    street1: _Text
    street2: str | None = Field(None, max_length=100)
    street3: str | None = Field(None, max_length=100)
    city: _Text
    state: str | None = Field(None, max_length=35)
    country: str = Field(min_length=2, max_length=2, pattern="^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2")
    zip: str = Field(min_length=1, max_length=20)  # after country: its check depends on it
    phone: str | None = Field(None, max_length=30)
    email: str | None = Field(None, max_length=320, json_schema_extra={"pattern": _EMAIL.pattern})
    is_residential: bool | None = None

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        if not (v.isascii() and v.isalpha()):
            raise ValueError("must be a two-letter ISO country code such as US")
        return v.upper()

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL.match(v):
            raise ValueError("is not an e-mail address")
        return v

    @field_validator("zip")
    @classmethod
    def _zip(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("country") == "US" and not _US_ZIP.match(v):
            raise ValueError("a US ZIP code is 5 digits (or ZIP+4)")
        return v

    def to_provider(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Parcel(BaseModel):
    """The guide's Parcel: dimensions in in or cm, weight in lb, kg, oz or g."""

    model_config = ConfigDict(extra="forbid")

    length: Dimension
    width: Dimension
    height: Dimension
    distance_unit: Literal["in", "cm"]
    weight: Dimension
    mass_unit: Literal["lb", "kg", "oz", "g"]

    def to_provider(self) -> dict[str, Any]:
        return self.model_dump()


class ShipmentItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: str = Field(min_length=1, max_length=120)
    quantity: int = Field(1, ge=1)


class CreateShipment(BaseModel):
    """POST /orders/{id}/shipments. Without address_to the order's shipping address is used; without
    address_from, the configured SHIPPO_FROM_* address; without items, every line item of the order."""

    model_config = ConfigDict(extra="forbid")

    parcels: list[Parcel] = Field(min_length=1, max_length=20)
    address_to: Address | None = None
    address_from: Address | None = None
    items: list[ShipmentItem] | None = None
    carrier_accounts: list[str] | None = None


class BuyLabel(BaseModel):
    """POST /shipments/{id}/label: the rate (our `rate_…` id or the provider's rate id) to buy."""

    model_config = ConfigDict(extra="forbid")

    rate_id: str = Field(min_length=1, max_length=120)

"""Address and Parcel validation: the guide's fields, in/cm and lb/kg/oz/g, errors located on the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from storebridge.shipping.commands import Address, BuyLabel, CreateShipment, Parcel

ADDRESS = {"name": "Ada", "street1": "1 Main St", "city": "Springfield", "zip": "62701", "country": "us"}
PARCEL = {"length": 10, "width": "8.5", "height": 4, "distance_unit": "cm", "weight": "250", "mass_unit": "g"}


def _error_fields(model: type[Any], data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_a_valid_address_is_normalised() -> None:
    """The country is upper-cased; unset optional fields are left out of what Shippo gets."""
    address = Address.model_validate({**ADDRESS, "zip": "62701-1234"})
    assert address.to_provider() == {**ADDRESS, "zip": "62701-1234", "country": "US"}


def test_address_errors_name_the_field() -> None:
    """Missing name, bad country, bad US ZIP, bad e-mail and unknown fields are located on that field."""
    assert _error_fields(Address, {k: v for k, v in ADDRESS.items() if k != "name"}) == ["name"]
    assert _error_fields(Address, {**ADDRESS, "country": "U1"}) == ["country"]
    assert _error_fields(Address, {**ADDRESS, "zip": "6270"}) == ["zip"]
    assert _error_fields(Address, {**ADDRESS, "email": "ada"}) == ["email"]
    assert _error_fields(Address, {**ADDRESS, "planet": "Mars"}) == ["planet"]


def test_non_us_postcodes_are_free_form() -> None:
    """A UK postcode is fine outside the US."""
    assert Address.model_validate({**ADDRESS, "zip": "SW1A 1AA", "country": "GB"}).zip == "SW1A 1AA"


def test_parcel_numbers_become_decimal_strings_in_every_unit() -> None:
    """Numbers or decimal strings become the strings Shippo wants, for in/cm and lb/kg/oz/g."""
    parcel = Parcel.model_validate(PARCEL)
    assert parcel.to_provider() == {**PARCEL, "length": "10", "width": "8.5", "height": "4", "weight": "250"}
    for mass in ("lb", "kg", "oz", "g"):
        for distance in ("in", "cm"):
            assert Parcel.model_validate({**PARCEL, "mass_unit": mass, "distance_unit": distance}).mass_unit == mass


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("distance_unit", "ft"),
        ("mass_unit", "stone"),
        ("weight", 0),
        ("weight", "-2"),
        ("weight", "heavy"),
        ("weight", True),
        ("length", "NaN"),
        ("height", 100000),
    ],
)
def test_parcel_errors_name_the_field(field: str, value: Any) -> None:
    """Units outside in/cm and lb/kg/oz/g, and non-positive or absurd numbers, are errors on that field."""
    assert _error_fields(Parcel, {**PARCEL, field: value}) == [field]


def test_shipment_and_label_requests() -> None:
    """A shipment needs at least one parcel and locates nested errors; a label needs a rate id."""
    assert _error_fields(CreateShipment, {"parcels": []}) == ["parcels"]
    assert _error_fields(CreateShipment, {"parcels": [{**PARCEL, "mass_unit": "t"}]}) == ["parcels.0.mass_unit"]
    assert _error_fields(CreateShipment, {"parcels": [PARCEL], "items": [{"sku": "A", "quantity": 0}]}) == [
        "items.0.quantity"
    ]
    assert _error_fields(BuyLabel, {}) == ["rate_id"]

"""The configuration reference is generated from the settings models, and docs/configuration.md holds it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings

from storebridge.cli import command
from storebridge.config_reference import (
    GENERATED_MARKER,
    SettingsSection,
    render_reference,
    settings_models,
    with_generated_reference,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_docs_configuration_holds_what_the_command_generates() -> None:
    """docs/configuration.md below its marker is exactly `storebridge config reference` (regenerate with
    `storebridge config reference --write docs/configuration.md`)."""
    document = DOC.read_text(encoding="utf-8")
    assert GENERATED_MARKER in document
    assert document == with_generated_reference(document, render_reference())


def test_the_command_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    """`storebridge config reference` prints the rendered Markdown unchanged (no Rich markup or wrapping)."""
    command()(["config", "reference"], prog_name="storebridge", standalone_mode=False)
    assert capsys.readouterr().out == render_reference()


def test_every_variable_of_every_settings_model_is_documented() -> None:
    """Every field says what it is; each one read from a variable appears under that variable with its description."""
    reference = render_reference()
    for section in settings_models():
        assert f"### {section.title}\n" in reference
        for name, field in section.model.model_fields.items():
            assert field.description, f"{section.model.__name__}.{name} has no docstring"
            if isinstance(field.validation_alias, str):
                row = next(
                    line for line in reference.splitlines() if line.startswith(f"| `{field.validation_alias}` |")
                )
                assert " ".join(field.description.split()) in row


class _Example(BaseSettings):
    token: SecretStr | None = Field(None, validation_alias="EX_TOKEN", description="The token.")
    wait_seconds: float = Field(2.5, gt=0, validation_alias="EX_WAIT_SECONDS", description="How long | to wait.")
    mode: str = Field(..., validation_alias="EX_MODE", description="Which mode.")
    derived: tuple[str, ...] = ()


def test_a_row_names_variable_type_bounds_default_and_meaning() -> None:
    """Secrets say so, bounds and required fields show, a `|` cannot break the table, unaliased fields stay out."""
    rendered = render_reference([SettingsSection("Example", _Example)])
    assert "| `EX_TOKEN` | secret | unset | The token. |" in rendered
    assert "| `EX_WAIT_SECONDS` | seconds (> 0) | `2.5` | How long \\| to wait. |" in rendered
    assert "| `EX_MODE` | text | required | Which mode. |" in rendered
    assert "derived" not in rendered


def test_a_field_without_a_description_is_refused() -> None:
    """The reference cannot silently list a variable nobody explained."""

    class Undocumented(BaseSettings):
        port: int = Field(1, validation_alias="EX_PORT")

    with pytest.raises(ValueError, match="EX_PORT"):
        render_reference([SettingsSection("Undocumented", Undocumented)])


def test_regenerating_keeps_the_hand_written_text_above_the_marker() -> None:
    """Only the part below the marker is replaced; a document without one gets it appended."""
    document = f"# Configuration\n\nIntro.\n\n{GENERATED_MARKER}\n\nold table\n"
    assert (
        with_generated_reference(document, "new table\n")
        == f"# Configuration\n\nIntro.\n\n{GENERATED_MARKER}\n\nnew table\n"
    )
    assert with_generated_reference("# Title\n", "t") == f"# Title\n\n{GENERATED_MARKER}\n\nt\n"

"""`sandbox_state`: one row per embedded emulator, its exported state as JSON text (see persistence.py)."""

from __future__ import annotations

from sqlalchemy import Float, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storebridge.db import Base, now

__all__ = ["SandboxState"]


class SandboxState(Base):
    __tablename__ = "sandbox_state"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)  # stripe, paypal, shippo, sendgrid, inventory
    state: Mapped[str] = mapped_column(Text)  # the emulator's to_dict(), as JSON
    updated_at: Mapped[float] = mapped_column(Float, default=now)

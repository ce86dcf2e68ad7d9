"""Shared base for every schema model: frozen, no unknown keys, optional provenance."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Confidence = Literal["published", "derived", "assumed"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Provenance(Frozen):
    """Where a parameter group comes from, so a report can say what is known and what is assumed."""

    source: str | None = Field(None, description="Publication, datasheet or calculation the figures come from")
    confidence: Confidence | None = Field(None, description="published / derived / assumed")
    notes: str | None = Field(None, description="Free text: the reasoning behind an assumption")

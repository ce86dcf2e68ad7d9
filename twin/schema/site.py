"""The site: explicit equipment plus compact hall templates, expanded later into racks and nodes."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, PositiveInt, field_validator, model_validator

from twin.schema.base import Frozen, Provenance
from twin.schema.components import (
    Busway,
    Cdu,
    Gpu,
    Pdu,
    Psu,
    Pump,
    Rack,
    RearDoorHx,
    Redundancy,
    Server,
    SiteComponent,
    Switchgear,
    Transformer,
    Ups,
)

DistributionLevel = Annotated[Transformer | Switchgear | Busway | Pdu | Ups, Field(discriminator="kind")]


class Location(Frozen):
    name: str
    lat_deg: float = Field(..., ge=-90, le=90)
    lon_deg: float = Field(..., ge=-180, le=180)
    elevation_m: float = 0.0
    utc_offset_h: float = 0.0
    climate: str = Field("memphis", description="Climate statistics in data/climate/ for the typical year")


class RackGroup(Provenance):
    """`count` racks of one catalog type; GPU racks hold `nodes` servers in all (the last may be partial)."""

    type: str = Field(..., description="Catalog rack type")
    count: PositiveInt = Field(..., description="Racks in the group, per hall")
    nodes: PositiveInt | None = Field(None, description="Servers in the group (default: every rack full)")
    rack: Rack = Field(..., description="The catalog rack with this group's overrides applied")

    @model_validator(mode="after")
    def _nodes_fit(self):
        per_rack = int(self.rack.nodes_per_rack)
        if self.nodes is not None:
            if self.rack.role != "gpu":
                raise ValueError(f"nodes is only for GPU racks, and {self.type} is a {self.rack.role} rack; "
                                 "expected no nodes (racks are counted by count)")
            need = -(-self.nodes // per_rack)
            if need != self.count:
                raise ValueError(
                    f"{self.nodes} nodes at {per_rack} per rack fill {need} racks, but count is {self.count}"
                )
        return self

    @property
    def nodes_total(self) -> int:
        if self.rack.role != "gpu":
            return 0
        return self.nodes if self.nodes is not None else self.count * int(self.rack.nodes_per_rack)


class Hall(Provenance):
    """A data hall template: `count` identical halls, ids formatted with {n} (1-based)."""

    id: str = Field(..., description="Hall id; with count > 1 it must contain {n}")
    count: PositiveInt = Field(1, description="Identical halls from this template")
    index_start: int = Field(1, description="Value of {n} for the first hall")
    fed_by: tuple[str, ...] = Field(..., min_length=1, description="Power components feeding the hall; may use {n}")
    cooled_by: tuple[str, ...] = Field(..., min_length=1, description="Facility loops serving the hall; may use {n}")
    redundancy: Redundancy = Field("N", description="2N: every first-level unit is fed by every hall feed")
    racks_per_row: PositiveInt = Field(..., description="Racks in a row (floor layout)")
    racks_per_array: PositiveInt = Field(8, description="GPU racks in one array / network pod")
    distribution: tuple[DistributionLevel, ...] = Field(
        ..., min_length=1, description="Levels from the hall feed down to the racks; count is per parent unit"
    )
    racks: tuple[RackGroup, ...] = Field(..., min_length=1)

    @field_validator("fed_by", "cooled_by", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return (v,) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _pattern(self):
        if self.count > 1 and "{n}" not in self.id:
            raise ValueError(f"id '{self.id}' must contain {{n}} when count is {self.count}")
        return self

    def instance_ids(self) -> list[str]:
        return [self.id.format(n=self.index_start + k) for k in range(self.count)]


class Parts(Frozen):
    """Catalog entries the site's racks use, resolved, so a Site is self-contained."""

    gpu: dict[str, Gpu] = {}
    server: dict[str, Server] = {}
    psu: dict[str, Psu] = {}
    cdu: dict[str, Cdu] = {}
    rdhx: dict[str, RearDoorHx] = {}
    pump: dict[str, Pump] = {}


class Site(Provenance):
    name: str = Field(..., min_length=1)
    description: str = ""
    location: Location
    components: tuple[SiteComponent, ...] = Field(..., min_length=1)
    halls: tuple[Hall, ...] = Field(..., min_length=1)
    oversubscription_pu: float = Field(
        1.0, ge=1.0, description="Declared ratio of downstream nameplate to upstream rating allowed"
    )
    parts: Parts = Field(default_factory=Parts)

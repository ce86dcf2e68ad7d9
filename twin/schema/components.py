"""One model per component kind: its attributes, units (in the names), defaults and meaning.

These classes are the single description of each kind. Site files, catalog entries and result
columns are all validated against them. A catalog entry is a partial component (no id, no links);
a site component names a catalog `type` and overrides single fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from twin.schema.base import Provenance

Pu = Annotated[float, Field(gt=0, le=1)]
NonNeg = Annotated[float, Field(ge=0)]
Redundancy = Literal["N", "N+1", "2N"]

# --------------------------------------------------------------------------- power sources


class Component(Provenance):
    """A piece of equipment: a node of the power graph and/or the cooling graph."""

    id: str = Field(..., min_length=1, description="Unique id within the site")
    type: str | None = Field(None, description="Catalog entry this component is an instance of")
    count: PositiveInt = Field(1, description="Identical units in parallel, modelled as one node")
    fed_by: tuple[str, ...] = Field((), description="Ids of the power components feeding this one")
    cooled_by: tuple[str, ...] = Field((), description="Ids of the cooling components taking this one's heat")
    redundancy: Redundancy = Field("N", description="Declared redundancy of the units or of the feeds")

    @field_validator("fed_by", "cooled_by", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return (v,) if isinstance(v, str) else v

    @property
    def p_max_kw(self) -> float:
        """Electrical rating of all units together (0 for components that carry no power)."""
        return 0.0


class UtilityFeed(Component):
    kind: Literal["utility_feed"] = "utility_feed"
    p_unit_max_kw: PositiveFloat = Field(..., description="Contracted / firm import capacity per unit")
    v_kv: PositiveFloat = Field(..., description="Service voltage")
    utility: str | None = Field(None, description="Serving utility, e.g. MLGW / TVA")

    @property
    def p_max_kw(self) -> float:
        return self.p_unit_max_kw * self.count


class GasTurbine(Component):
    kind: Literal["gas_turbine"] = "gas_turbine"
    p_unit_max_kw: PositiveFloat = Field(..., description="ISO electrical output per unit")
    p_min_pu: NonNeg = Field(0.3, le=1, description="Minimum stable load per unit, fraction of rating")
    heat_rate_kj_kwh: PositiveFloat = Field(..., description="Full-load heat rate, LHV")
    start_cost_usd: NonNeg = Field(0.0, description="Cost of one start")
    min_up_h: NonNeg = Field(0.0, description="Minimum up time once started")
    min_down_h: NonNeg = Field(0.0, description="Minimum down time once stopped")
    ramp_pu_min: PositiveFloat = Field(1.0, description="Ramp rate per unit, fraction of rating per minute")
    start_time_min: NonNeg = Field(10.0, description="Time from start command to full load")
    nox_kg_mwh: NonNeg = Field(0.0, description="NOx emitted per MWh generated")

    @property
    def p_max_kw(self) -> float:
        return self.p_unit_max_kw * self.count


class Battery(Component):
    kind: Literal["battery"] = "battery"
    p_unit_max_kw: PositiveFloat = Field(..., description="Charge/discharge power per unit (AC)")
    e_unit_max_kwh: PositiveFloat = Field(..., description="Usable energy per unit")
    efficiency_roundtrip_pu: Pu = Field(0.9, description="AC round-trip efficiency")
    soc_min_pu: NonNeg = Field(0.05, lt=1, description="Lowest allowed state of charge")
    soc_max_pu: Pu = Field(1.0, description="Highest allowed state of charge")

    @property
    def p_max_kw(self) -> float:
        return self.p_unit_max_kw * self.count

    @property
    def e_max_kwh(self) -> float:
        return self.e_unit_max_kwh * self.count


# --------------------------------------------------------------------------- conversion stages


class Conversion(Component):
    """A stage the power passes through; its loss model gives P_in from P_out."""

    def p_in_kw(self, p_out_kw: np.ndarray) -> np.ndarray:  # pragma: no cover - overridden
        raise TypeError(f"{type(self).__name__} has no loss model")


class Transformer(Conversion):
    """No-load + load-squared losses: P_in = P_out + P_nl + P_ll·(S/S_rated)²."""

    kind: Literal["transformer"] = "transformer"
    s_unit_rated_kva: PositiveFloat = Field(..., description="Rated apparent power per unit")
    v_primary_kv: PositiveFloat = Field(..., description="Primary voltage")
    v_secondary_kv: PositiveFloat = Field(..., description="Secondary voltage")
    p_noload_kw: NonNeg = Field(..., description="No-load (core) loss per unit")
    p_load_kw: NonNeg = Field(..., description="Load (copper) loss per unit at rated load")
    power_factor_pu: Pu = Field(0.95, description="Load power factor used to turn kVA into kW")

    @property
    def p_max_kw(self) -> float:
        return self.s_unit_rated_kva * self.power_factor_pu * self.count

    def p_in_kw(self, p_out_kw):
        load_pu = p_out_kw / self.p_max_kw
        return p_out_kw + self.count * (self.p_noload_kw + self.p_load_kw * load_pu**2)


class Substation(Transformer):
    kind: Literal["substation"] = "substation"


class EfficiencyStage(Conversion):
    """P_in = (P_out + c) / η, the form used for switchgear, busways and PDUs."""

    p_unit_max_kw: PositiveFloat = Field(..., description="Rating per unit")
    efficiency_pu: Pu = Field(0.995, description="Efficiency η of the stage")
    p_const_kw: NonNeg = Field(0.0, description="Constant loss c per unit (control power, fans)")

    @property
    def p_max_kw(self) -> float:
        return self.p_unit_max_kw * self.count

    def p_in_kw(self, p_out_kw):
        return (p_out_kw + self.p_const_kw * self.count) / self.efficiency_pu


class Switchgear(EfficiencyStage):
    kind: Literal["switchgear"] = "switchgear"
    v_kv: PositiveFloat = Field(13.8, description="Bus voltage")


class Busway(EfficiencyStage):
    kind: Literal["busway"] = "busway"


class Pdu(EfficiencyStage):
    kind: Literal["pdu"] = "pdu"


class CurveStage(Conversion):
    """Efficiency read off a curve of load fraction (UPS, PSU): P_in = P_out / η(P_out/P_rated)."""

    p_unit_max_kw: PositiveFloat = Field(..., description="Rating per unit")
    load_pu: tuple[NonNeg, ...] = Field(..., min_length=2, description="Load points of the efficiency curve")
    efficiency_pu: tuple[Pu, ...] = Field(..., min_length=2, description="Efficiency at each load point")

    @model_validator(mode="after")
    def _curve(self):
        if len(self.load_pu) != len(self.efficiency_pu):
            raise ValueError(f"load_pu has {len(self.load_pu)} points and efficiency_pu {len(self.efficiency_pu)}; "
                             "expected one efficiency per load point")
        if any(b <= a for a, b in zip(self.load_pu, self.load_pu[1:], strict=False)):
            raise ValueError(f"load_pu {list(self.load_pu)} is not strictly increasing; expected rising load points")
        return self

    @property
    def p_max_kw(self) -> float:
        return self.p_unit_max_kw * self.count

    def efficiency_at(self, load_pu):
        return np.interp(load_pu, self.load_pu, self.efficiency_pu)

    def p_in_kw(self, p_out_kw):
        return p_out_kw / self.efficiency_at(p_out_kw / self.p_max_kw)


class Ups(CurveStage):
    kind: Literal["ups"] = "ups"


class Psu(CurveStage):
    kind: Literal["psu"] = "psu"


# --------------------------------------------------------------------------- IT equipment


class Gpu(Provenance):
    kind: Literal["gpu"] = "gpu"
    tdp_w: PositiveFloat = Field(..., description="Thermal design power (board power limit)")
    idle_w: PositiveFloat = Field(..., description="Power when idle")
    memory_gb: PositiveFloat | None = Field(None, description="HBM capacity")
    vendor: str = "NVIDIA"


class Server(Provenance):
    """A GPU node: the smallest node of the power graph (GPUs are counts on it)."""

    kind: Literal["server"] = "server"
    gpu_type: str = Field(..., description="Catalog GPU")
    gpus_per_node: PositiveInt = Field(..., description="GPUs in the node")
    p_max_kw: PositiveFloat = Field(..., description="Maximum input power (nameplate)")
    p_base_kw: NonNeg = Field(..., description="Non-GPU power (CPUs, NICs, memory, fans) at typical load, DC")
    psu_type: str | None = Field(None, description="Catalog PSU; its curve gives AC input from DC load")
    psu_count: PositiveInt = Field(1, description="PSUs sharing the load")
    liquid_fraction_pu: NonNeg = Field(0.8, le=1, description="Share of heat taken by cold plates")


class Cdu(Provenance):
    """Coolant distribution unit: heat exchanger between a rack's secondary loop and facility water."""

    kind: Literal["cdu"] = "cdu"
    q_max_kw: PositiveFloat = Field(..., description="Heat transfer capacity")
    approach_k: PositiveFloat = Field(..., description="Secondary supply minus facility supply at design")
    flow_secondary_m3_h: PositiveFloat = Field(..., description="Secondary (rack) coolant flow at design")
    p_pump_kw: NonNeg = Field(..., description="Pump electrical power at design flow")
    t_secondary_max_c: float = Field(45.0, description="Highest allowed secondary supply temperature")


class RearDoorHx(Provenance):
    kind: Literal["rdhx"] = "rdhx"
    q_max_kw: PositiveFloat = Field(..., description="Heat removal capacity")
    approach_k: PositiveFloat = Field(..., description="Leaving air minus facility water supply at design")
    p_fan_kw: NonNeg = Field(0.0, description="Fan power (0 for passive doors)")


class Rack(Provenance):
    """A rack type: GPU nodes (liquid cooled through a CDU) or air-cooled CPU/storage/network gear."""

    kind: Literal["rack"] = "rack"
    role: Literal["gpu", "cpu", "storage", "network"] = Field(..., description="What the rack holds")
    node_type: str | None = Field(None, description="Catalog server, for GPU racks")
    nodes_per_rack: NonNeg = Field(0, description="Servers in a full rack")
    p_it_max_kw: NonNeg = Field(0.0, description="IT nameplate of a non-GPU rack")
    p_it_typical_pu: Pu = Field(0.6, description="Typical load of a non-GPU rack, fraction of nameplate")
    cdu_type: str | None = Field(None, description="Catalog CDU in the rack, if liquid cooled")
    rdhx_type: str | None = Field(None, description="Catalog rear-door heat exchanger, if any")

    @model_validator(mode="after")
    def _role(self):
        if self.role == "gpu" and (self.node_type is None or self.nodes_per_rack <= 0):
            raise ValueError("a GPU rack needs node_type and nodes_per_rack > 0")
        if self.role != "gpu" and self.p_it_max_kw <= 0:
            raise ValueError(f"a {self.role} rack needs p_it_max_kw > 0")
        if self.cdu_type is None and self.rdhx_type is None:
            raise ValueError("a rack needs cdu_type or rdhx_type: its heat must go somewhere")
        return self


# --------------------------------------------------------------------------- cooling plant


class FacilityLoop(Component):
    """Facility water loop between heat rejection and the CDUs / rear doors of one or more halls."""

    kind: Literal["facility_loop"] = "facility_loop"
    t_supply_c: float = Field(..., description="Facility water supply temperature setpoint")
    dt_design_k: PositiveFloat = Field(..., description="Return minus supply at design flow")
    q_max_kw: PositiveFloat = Field(..., description="Heat the loop carries at design")
    volume_m3: NonNeg = Field(0.0, description="Water volume (thermal storage of the loop)")
    pump_type: str | None = Field(None, description="Catalog pump type driving the loop")
    pump_count: PositiveInt = Field(1, description="Pumps in parallel")


class Chiller(Component):
    """Vapour-compression chiller; COP falls with the lift from supply to outdoor (or condenser) side."""

    kind: Literal["chiller"] = "chiller"
    condenser: Literal["air", "water"] = Field(..., description="Air-cooled or water-cooled condenser")
    q_unit_max_kw: PositiveFloat = Field(..., description="Cooling capacity per unit")
    cop_rated: PositiveFloat = Field(..., description="COP at the rating point")
    t_supply_rated_c: float = Field(..., description="Chilled-water supply at the rating point")
    t_condenser_rated_c: float = Field(..., description="Outdoor dry-bulb (air) or condenser water in (water) at rating")
    approach_condenser_k: NonNeg = Field(8.0, description="Condensing temperature above the air/water entering")
    free_cooling_approach_k: NonNeg | None = Field(None, description="Economiser: outdoor below supply minus this cools for free")
    p_fan_kw: NonNeg = Field(0.0, description="Condenser fan power per unit at full load")

    @property
    def q_max_kw(self) -> float:
        return self.q_unit_max_kw * self.count


class CoolingTower(Component):
    """Evaporative heat rejection: leaving water approaches the outdoor wet-bulb."""

    kind: Literal["cooling_tower"] = "cooling_tower"
    q_unit_max_kw: PositiveFloat = Field(..., description="Heat rejection per cell at design")
    approach_k: PositiveFloat = Field(..., description="Leaving water minus wet-bulb at design")
    p_fan_kw: NonNeg = Field(..., description="Fan power per cell at full speed")
    cycles_of_concentration: Annotated[float, Field(gt=1)] = Field(5.0, description="Blowdown setting")
    drift_pu: NonNeg = Field(0.0002, lt=1, description="Drift loss, fraction of circulating flow")

    @property
    def q_max_kw(self) -> float:
        return self.q_unit_max_kw * self.count


class DryCooler(Component):
    """Dry (sensible) heat rejection: leaving water approaches the outdoor dry-bulb."""

    kind: Literal["dry_cooler"] = "dry_cooler"
    q_unit_max_kw: PositiveFloat = Field(..., description="Heat rejection per unit at design")
    approach_k: PositiveFloat = Field(..., description="Leaving water minus dry-bulb at design")
    p_fan_kw: NonNeg = Field(..., description="Fan power per unit at full speed")

    @property
    def q_max_kw(self) -> float:
        return self.q_unit_max_kw * self.count


class Pump(Provenance):
    kind: Literal["pump"] = "pump"
    flow_rated_m3_h: PositiveFloat = Field(..., description="Flow at the rating point")
    head_rated_m: PositiveFloat = Field(..., description="Head at the rating point")
    efficiency_pu: Pu = Field(0.75, description="Wire-to-water efficiency at the rating point")

    @property
    def p_elec_rated_kw(self) -> float:
        """Electrical input at the rating point: rho g Q H / efficiency."""
        hydraulic_kw = WATER_RHO_KG_M3 * GRAVITY_M_S2 * self.flow_rated_m3_h / 3600 * self.head_rated_m / 1000
        return hydraulic_kw / self.efficiency_pu


# Kinds that may stand in a site's `components` list, by their `kind` tag.
SITE_COMPONENTS = {
    cls.model_fields["kind"].default: cls
    for cls in (
        UtilityFeed, GasTurbine, Battery, Substation, Transformer, Switchgear, Busway, Pdu, Ups,
        FacilityLoop, Chiller, CoolingTower, DryCooler,
    )
}
# Kinds that may stand in a hall's distribution levels.
DISTRIBUTION_KINDS = {k: SITE_COMPONENTS[k] for k in ("transformer", "switchgear", "busway", "pdu", "ups")}
# Every catalog kind, by the catalog file it lives in.
CATALOG_KINDS = {
    **SITE_COMPONENTS,
    "gpu": Gpu, "server": Server, "rack": Rack, "cdu": Cdu, "rdhx": RearDoorHx, "pump": Pump, "psu": Psu,
}
SOURCE_KINDS = ("utility_feed", "gas_turbine", "battery")
CONVERSION_KINDS = ("substation", "transformer", "switchgear", "busway", "pdu", "ups")
COOLING_KINDS = ("facility_loop", "chiller", "cooling_tower", "dry_cooler")
HEAT_REJECTION_KINDS = ("chiller", "cooling_tower", "dry_cooler")

SiteComponent = Annotated[
    UtilityFeed | GasTurbine | Battery | Substation | Transformer | Switchgear | Busway | Pdu | Ups
    | FacilityLoop | Chiller | CoolingTower | DryCooler,
    Field(discriminator="kind"),
]


WATER_RHO_KG_M3 = 997.0  # at about 25 degC
CP_WATER_KJ_KG_K = 4.186
GRAVITY_M_S2 = 9.81


def cooling_p_elec_max_kw(model, site) -> float:
    """Electrical rating of a cooling consumer: compressors at the rating point, fans, loop pumps.

    `site` is needed only for a facility loop (its pump type is resolved in `site.parts`)."""
    if isinstance(model, Chiller):
        return model.q_max_kw / model.cop_rated + model.p_fan_kw * model.count
    if isinstance(model, CoolingTower | DryCooler):
        return model.p_fan_kw * model.count
    if isinstance(model, FacilityLoop):
        if model.pump_type is None:
            return 0.0
        return site.parts.pump[model.pump_type].p_elec_rated_kw * model.pump_count
    return 0.0

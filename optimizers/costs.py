"""Cost and performance data of the optimisers (`data/costs.yaml`), loaded into typed frozen objects.

Every value in the file carries `source` and `confidence`; `Costs.provenance` keeps them by dotted key
so a report can list what is published, derived or assumed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml

from twin.errors import InputError, Problem
from twin.paths import data_dir

CONFIDENCE = ("published", "derived", "assumed")


def crf(rate_pu: float, lifetime_years: float) -> float:
    """Capital recovery factor r(1+r)^n / ((1+r)^n - 1): the annual payment, per unit of capex, that repays
    it over n years at rate r (1/n at r = 0)."""
    r, n = rate_pu, lifetime_years
    return 1.0 / n if r == 0 else r * (1 + r) ** n / ((1 + r) ** n - 1)


@dataclass(frozen=True)
class Financial:
    discount_rate_pu: float

    def crf(self, lifetime_years: float) -> float:
        return crf(self.discount_rate_pu, lifetime_years)


@dataclass(frozen=True)
class Fuel:
    gas_price_usd_mmbtu: float


@dataclass(frozen=True)
class TurbineCosts:
    p_max_kw: float
    heat_rate_kj_kwh: float
    hhv_lhv_ratio: float
    p_min_pu: float
    min_up_h: float
    min_down_h: float
    start_cost_usd: float
    capex_usd_kw: float
    fom_usd_kw_year: float
    vom_usd_kwh: float
    lifetime_years: float
    co2_kg_per_mmbtu: float
    nox_kg_per_mmbtu: float


@dataclass(frozen=True)
class BatteryCosts:
    capex_usd_kwh: float
    capex_usd_kw: float
    fom_usd_kw_year: float
    lifetime_years: float
    efficiency_roundtrip_pu: float
    duration_h: float
    soc_min_pu: float


@dataclass(frozen=True)
class GridCosts:
    interconnection_capex_usd_kw: float
    interconnection_fom_usd_kw_year: float
    interconnection_lifetime_years: float
    co2_kg_kwh: float


@dataclass(frozen=True)
class Tariff:
    on_peak_energy_usd_kwh: float
    off_peak_energy_usd_kwh: float
    demand_charge_usd_kw_month: float
    on_peak_hours: tuple[int, int]
    on_peak_weekdays_only: bool

    def price_usd_kwh(self, time: np.ndarray) -> np.ndarray:
        """Energy price per step for local-time stamps `time` (datetime64), TOU proxy."""
        t = np.asarray(time).astype("datetime64[h]")
        hour = (t - t.astype("datetime64[D]")).astype(int)
        on = (hour >= self.on_peak_hours[0]) & (hour < self.on_peak_hours[1])
        if self.on_peak_weekdays_only:
            weekday = (t.astype("datetime64[D]").astype(int) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
            on &= weekday < 5
        return np.where(on, self.on_peak_energy_usd_kwh, self.off_peak_energy_usd_kwh)


@dataclass(frozen=True)
class ChillerCosts:
    capex_usd_kw_thermal: float
    fom_usd_kw_thermal_year: float
    lifetime_years: float


@dataclass(frozen=True)
class Reliability:
    value_of_lost_load_usd_kwh: float
    load_reduction_kw: float


@dataclass(frozen=True)
class Provenance:
    source: str
    confidence: str
    note: str = ""


@dataclass(frozen=True)
class Costs:
    financial: Financial
    fuel: Fuel
    turbine_smt130: TurbineCosts
    battery_megapack: BatteryCosts
    grid: GridCosts
    tariff_tva_tou_proxy: Tariff
    chiller: ChillerCosts
    reliability: Reliability
    provenance: dict[str, Provenance]
    file: str


def _section(cls, raw: dict, name: str, file: str, problems: list, prov: dict):
    sec = raw.get(name)
    if not isinstance(sec, dict):
        problems.append(Problem(file, name, "missing section (expected a mapping of items)"))
        return None
    vals = {}
    for f in dataclasses.fields(cls):
        key = f"{name}.{f.name}"
        item = sec.get(f.name)
        if not isinstance(item, dict) or "value" not in item:
            problems.append(Problem(file, key, "missing item (expected {value, source, confidence})"))
            continue
        if not item.get("source"):
            problems.append(Problem(file, key + ".source", "missing: every figure carries its source"))
        conf = item.get("confidence")
        if conf not in CONFIDENCE:
            problems.append(Problem(file, key + ".confidence", f"{conf!r}, expected one of {CONFIDENCE}"))
        v = item["value"]
        if f.type == "bool":
            ok = isinstance(v, bool)
        elif f.type.startswith("tuple"):
            ok = isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)
            v = tuple(v) if ok else v
        else:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            v = float(v) if ok else v
        if not ok:
            problems.append(Problem(file, key + ".value", f"{item['value']!r}, expected {f.type}"))
        vals[f.name] = v
        prov[key] = Provenance(str(item.get("source", "")), str(conf), str(item.get("note", "")))
    return cls(**vals) if len(vals) == len(dataclasses.fields(cls)) else None


def load_costs(path: str | Path | None = None) -> Costs:
    """Load and validate `data/costs.yaml` (or `path`); raises `InputError` listing every problem."""
    p = Path(path) if path is not None else data_dir() / "costs.yaml"
    return _load(str(p))


@cache
def _load(file: str) -> Costs:
    try:
        raw = yaml.safe_load(Path(file).read_text())
    except FileNotFoundError:
        raise InputError.one(file, "", "file not found") from None
    except yaml.YAMLError as e:
        raise InputError.one(file, "", f"not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise InputError.one(file, "", "expected a mapping at the top level")
    problems: list[Problem] = []
    prov: dict[str, Provenance] = {}
    kinds = {f.name: f.type for f in dataclasses.fields(Costs)}
    classes = {"financial": Financial, "fuel": Fuel, "turbine_smt130": TurbineCosts,
               "battery_megapack": BatteryCosts, "grid": GridCosts, "tariff_tva_tou_proxy": Tariff,
               "chiller": ChillerCosts, "reliability": Reliability}
    assert set(classes) <= set(kinds)
    secs = {name: _section(cls, raw, name, file, problems, prov) for name, cls in classes.items()}
    if problems:
        raise InputError(problems)
    return Costs(**secs, provenance=prov, file=file)

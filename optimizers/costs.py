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


HOURS_PER_MONTH_H = 8760.0 / 12.0  # an average month
OFF_PEAK_PRICE_TOL_USD_KWH = 5e-5  # the file's flat off-peak price is the blocks' effective price to 4 decimals


@dataclass(frozen=True)
class Tariff:
    """TVA-distributor TOU tariff (proxy). Off-peak energy is billed in declining blocks by hours use of
    metered demand: the month's off-peak kWh per kW of maximum demand. The first
    `off_peak_block_hours_use_h[0]` hours use pay `off_peak_block_energy_usd_kwh[0]`, the next ones the
    second price, ..., the rest the last price. `off_peak_energy_usd_kwh` is the flat off-peak price the
    engine and the dispatch use: the blocks' effective price at `reference_load_factor_pu` (checked on load)."""

    on_peak_energy_usd_kwh: float
    off_peak_energy_usd_kwh: float
    off_peak_block_energy_usd_kwh: tuple[float, ...]
    off_peak_block_hours_use_h: tuple[float, ...]
    reference_load_factor_pu: float
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

    @property
    def off_peak_hours_month_h(self) -> float:
        """Off-peak hours in an average month: 730 h less the on-peak window (weekdays only if so set)."""
        on_share = (self.on_peak_hours[1] - self.on_peak_hours[0]) / 24.0 * (5 / 7 if self.on_peak_weekdays_only else 1.0)
        return HOURS_PER_MONTH_H * (1.0 - on_share)

    def off_peak_hours_use_h(self, load_factor_pu):
        """Off-peak hours use of metered demand in a month of a load with this load factor (monthly energy /
        (maximum demand x hours)), its energy spread evenly over on- and off-peak hours."""
        return np.asarray(load_factor_pu, float) * self.off_peak_hours_month_h

    def _block_energy_h(self, hours_use_h) -> np.ndarray:
        """kWh per kW of demand falling in each block, shape (..., blocks)."""
        h = np.asarray(hours_use_h, float)[..., None]
        lo = np.concatenate([[0.0], np.cumsum(self.off_peak_block_hours_use_h)])
        hi = np.append(lo[1:], np.inf)
        return np.clip(h, lo, hi) - lo

    def off_peak_effective_usd_kwh(self, hours_use_h):
        """Average price of the month's off-peak kWh at `hours_use_h` off-peak hours use (the first block's
        price at 0 h). Vectorised over `hours_use_h`."""
        h = np.asarray(hours_use_h, float)
        if np.any(h < 0):
            raise InputError.one("<Tariff>", "hours_use_h", f"{h.min()}, expected >= 0")
        price = np.asarray(self.off_peak_block_energy_usd_kwh, float)
        cost = self._block_energy_h(h) @ price
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(h > 0, cost / np.where(h > 0, h, 1.0), price[0])

    def off_peak_marginal_usd_kwh(self, hours_use_h):
        """Price of one more off-peak kWh at `hours_use_h`: the price of the block that hours use is in."""
        h = np.asarray(hours_use_h, float)
        edges = np.cumsum(self.off_peak_block_hours_use_h)
        return np.asarray(self.off_peak_block_energy_usd_kwh, float)[np.searchsorted(edges, h, side="right")]

    def off_peak_effective_at_load_factor_usd_kwh(self, load_factor_pu):
        """Effective off-peak price of a load with this load factor."""
        return self.off_peak_effective_usd_kwh(self.off_peak_hours_use_h(load_factor_pu))

    def problems(self, file: str) -> list[Problem]:
        """Consistency of the blocks and of the flat off-peak price with them."""
        key = "tariff_tva_tou_proxy."
        prices, widths = self.off_peak_block_energy_usd_kwh, self.off_peak_block_hours_use_h
        out = []
        if len(prices) != len(widths) + 1:
            out.append(Problem(file, key + "off_peak_block_hours_use_h.value",
                               f"{len(widths)} widths for {len(prices)} block prices, expected one width fewer "
                               "than prices (the last block is open)"))
        if any(w <= 0 for w in widths):
            out.append(Problem(file, key + "off_peak_block_hours_use_h.value", f"{list(widths)}, expected widths > 0"))
        if any(p < 0 for p in prices):
            out.append(Problem(file, key + "off_peak_block_energy_usd_kwh.value", f"{list(prices)}, expected prices >= 0"))
        if not 0 < self.reference_load_factor_pu <= 1:
            out.append(Problem(file, key + "reference_load_factor_pu.value",
                               f"{self.reference_load_factor_pu}, expected in (0, 1]"))
        if out:
            return out
        eff = float(self.off_peak_effective_at_load_factor_usd_kwh(self.reference_load_factor_pu))
        if abs(self.off_peak_energy_usd_kwh - eff) > OFF_PEAK_PRICE_TOL_USD_KWH:
            out.append(Problem(file, key + "off_peak_energy_usd_kwh.value",
                               f"{self.off_peak_energy_usd_kwh}, expected {eff:.4f}: the off-peak blocks' effective "
                               f"price at the reference load factor {self.reference_load_factor_pu:g}"))
        return out


@dataclass(frozen=True)
class ChillerCosts:
    capex_usd_kw_thermal: float
    fom_usd_kw_thermal_year: float
    lifetime_years: float
    cop_pu: float  # kW of cooling per kW of electricity, fans included


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
    if secs["tariff_tva_tou_proxy"] is not None:
        problems += secs["tariff_tva_tou_proxy"].problems(file)
    if secs["chiller"] is not None and not secs["chiller"].cop_pu > 0:
        problems.append(Problem(file, "chiller.cop_pu.value", f"{secs['chiller'].cop_pu}, expected > 0"))
    if problems:
        raise InputError(problems)
    return Costs(**secs, provenance=prov, file=file)

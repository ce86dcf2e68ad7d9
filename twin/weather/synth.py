"""A typical year of hourly weather synthesised from shipped climate statistics, and weather utilities.

``typical_year("memphis")`` reads ``data/climate/memphis.yaml`` and builds 8,760 hourly values on the
same hour-beginning 2025 time axis as :func:`twin.weather.read_epw` (the value at label ``L`` stands for
the EPW record of clock hour ``L + 1``, so a synthesised year and an EPW line up hour by hour):

1. **Seasonal cycle**: a periodic cubic spline through twelve knots (one per month) whose knot values are
   solved so that every calendar month's hourly mean equals the shipped monthly mean exactly
   (mean-preserving interpolation; used for dry bulb, dew point and daily range).
2. **Diurnal cycle**: ASHRAE's fraction-of-daily-range profile (minimum at 05:00, maximum 14:00-15:00),
   with the clock warped so the minimum follows sunrise through the year, scaled by a daily range that
   is calibrated (two fixed-point passes) so the monthly mean of daily maximum minus minimum matches the
   shipped mean daily high minus low.
3. **Synoptic variability**: hourly AR(1) anomalies (lag-one correlation ``exp(-1/tau_h)``, seasonal
   standard deviation between ``sigma_*_winter_k`` and ``sigma_*_summer_k``), drawn from a seeded RNG so
   the year is deterministic, made periodic across 31 Dec -> 1 Jan by a variance-preserving cross-fade,
   and with their monthly means removed smoothly so the monthly means above still hold. Dew-point
   anomalies share a fraction ``corr_dew_dry_pu`` with the dry-bulb anomalies.
4. **Humidity**: dew point = seasonal cycle + anomaly, capped at the dry bulb. The summer dew-point sigma is
   solved (Brent) so the annual 0.4 % (99.6th percentile) wet bulb equals the ASHRAE evaporation design
   wet bulb shipped in the climate file.
5. **Pressure**: constant standard-atmosphere station pressure at the station elevation.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import Field, ValidationError, model_validator
from scipy.interpolate import CubicSpline
from scipy.optimize import brentq
from scipy.signal import lfilter

from twin.errors import InputError
from twin.paths import data_dir
from twin.schema.base import Confidence, Frozen
from twin.weather import psychro
from twin.weather.epw import make_dataset, read_epw, year_index

_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_N = 8760
_MONTH_OF_HOUR = np.repeat(np.arange(12), _DAYS * 24)
_BLEND_H = 72  # cross-fade length that makes the anomalies periodic over the year


# --------------------------------------------------------------------------- climate file schema
Monthly = list[float]


class Station(Frozen):
    name: str
    state: str = ""
    country: str = ""
    wmo: str = ""
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    tz_utc_h: float = Field(ge=-12, le=14)
    elevation_m: float = Field(ge=-500, le=9000)
    source: str
    confidence: Confidence


class MonthlyDryBulb(Frozen):
    t_dry_mean_c: Monthly = Field(min_length=12, max_length=12)
    t_dry_high_mean_c: Monthly = Field(min_length=12, max_length=12)
    t_dry_low_mean_c: Monthly = Field(min_length=12, max_length=12)
    source: str
    confidence: Confidence

    @model_validator(mode="after")
    def _ordered(self):
        for i, (lo, mean, hi) in enumerate(
            zip(self.t_dry_low_mean_c, self.t_dry_mean_c, self.t_dry_high_mean_c, strict=True)
        ):
            if not lo < mean < hi:
                raise ValueError(f"month {i + 1}: expected low < mean < high, found {lo} / {mean} / {hi}")
        return self


class DewPoint(Frozen):
    t_dew_mean_c: Monthly = Field(min_length=12, max_length=12)
    source: str
    confidence: Confidence


class Design(Frozen):
    t_dry_cooling_0p4_c: float
    t_wet_mean_coincident_0p4_c: float
    t_wet_evaporation_0p4_c: float
    t_dry_mean_coincident_evaporation_0p4_c: float | None = None
    t_dew_dehumidification_0p4_c: float | None = None
    t_dry_heating_99p6_c: float
    t_wet_extreme_max_c: float | None = None
    t_dry_range_hottest_month_k: float | None = None
    source: str
    confidence: Confidence


class Diurnal(Frozen):
    fraction_of_range_below_max_pu: list[float] = Field(min_length=24, max_length=24)
    source: str
    confidence: Confidence


class Variability(Frozen):
    tau_h: float = Field(gt=0, le=1000)
    sigma_t_dry_winter_k: float = Field(ge=0)
    sigma_t_dry_summer_k: float = Field(ge=0)
    sigma_t_dew_winter_k: float = Field(ge=0)
    sigma_t_dew_summer_k: float = Field(ge=0)
    corr_dew_dry_pu: float = Field(ge=-1, le=1)
    seed: int
    source: str
    confidence: Confidence


class Climate(Frozen):
    name: str
    station: Station
    monthly: MonthlyDryBulb
    dew_point: DewPoint
    design: Design
    diurnal: Diurnal
    variability: Variability


def climate_path(climate: str) -> Path:
    return data_dir() / "climate" / f"{climate}.yaml"


def load_climate(climate: str = "memphis") -> Climate:
    """Read and validate ``data/climate/<climate>.yaml``; errors name the file and key."""
    from twin.yamlio import problems_from_validation, read_yaml

    path = climate_path(climate)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise InputError.one(path, "", f"no climate statistics named {climate!r}; expected one of {known}")
    raw = read_yaml(path)
    try:
        return Climate.model_validate(raw)
    except ValidationError as exc:
        # Models by key path, so an unknown key gets a "did you mean" from its own section.
        models_at = {"": Climate, **{k: f.annotation for k, f in Climate.model_fields.items() if k != "name"}}
        raise InputError(problems_from_validation(str(path), exc, frozenset(), models_at)) from None


# --------------------------------------------------------------------------- building blocks
@cache
def _mean_preserving_operator() -> np.ndarray:
    """(8760, 12) matrix M: ``M @ monthly_means`` is a smooth periodic hourly curve with those monthly means."""
    edges = np.concatenate(([0], np.cumsum(_DAYS * 24)))
    knots = 0.5 * (edges[:-1] + edges[1:])
    x = np.append(knots, knots[0] + _N)
    h = np.arange(_N) + 0.5
    basis = np.empty((_N, 12))
    for j in range(12):
        y = np.zeros(13)
        y[j] = 1.0
        y[12] = y[0]
        basis[:, j] = CubicSpline(x, y, bc_type="periodic")(np.where(h < knots[0], h + _N, h))
    avg = np.stack([basis[_MONTH_OF_HOUR == m].mean(axis=0) for m in range(12)])  # (12, 12)
    op = basis @ np.linalg.inv(avg)
    op.setflags(write=False)
    return op


def _monthly_mean(x: np.ndarray) -> np.ndarray:
    return np.bincount(_MONTH_OF_HOUR, weights=x, minlength=12) / (_DAYS * 24)


def _remove_monthly_means(x: np.ndarray) -> np.ndarray:
    return x - _mean_preserving_operator() @ _monthly_mean(x)


def _sunrise_h(doy: np.ndarray, lat_deg: float, lon_deg: float, tz_utc_h: float) -> np.ndarray:
    """Approximate sunrise in local standard time [h] (Cooper declination, Spencer-type equation of time)."""
    decl = np.radians(23.45) * np.sin(2 * np.pi * (284 + doy) / 365)
    cos_w = np.clip(-np.tan(np.radians(lat_deg)) * np.tan(decl), -1, 1)
    half_day_h = np.degrees(np.arccos(cos_w)) / 15
    b = 2 * np.pi * (doy - 81) / 364
    eot_min = 9.87 * np.sin(2 * b) - 7.53 * np.cos(b) - 1.5 * np.sin(b)
    noon = 12 - eot_min / 60 - (lon_deg - 15 * tz_utc_h) / 15
    return noon - half_day_h


def _diurnal_shape(clim: Climate) -> np.ndarray:
    """Zero-daily-mean diurnal shape in units of the daily range (+ = warmer), one value per hour."""
    frac = np.asarray(clim.diurnal.fraction_of_range_below_max_pu)
    hours = np.arange(_N)
    doy = hours // 24 + 1
    clock = (hours % 24 + 1).astype(float)  # label L stands for the observation at clock hour L+1
    st = clim.station
    sr = _sunrise_h(doy.astype(float), st.lat_deg, st.lon_deg, st.tz_utc_h)
    t_max, t_min = 14.5, 5.0
    u = np.mod(clock - sr, 24.0)
    d1 = t_max - sr
    x = np.where(
        u < d1, t_min + u * (t_max - t_min) / d1, t_max + (u - d1) * (24 + t_min - t_max) / (24 - d1)
    )
    f = np.interp(np.mod(x, 24.0), np.arange(1, 25, dtype=float), frac, period=24.0)
    shape = -f
    return shape - shape.reshape(365, 24).mean(axis=1).repeat(24)


def _seasonal(winter: float, summer: float) -> np.ndarray:
    doy = np.arange(_N) / 24.0
    return 0.5 * (winter + summer) + 0.5 * (winter - summer) * np.cos(2 * np.pi * (doy - 14.5) / 365)


def _ar1_periodic(rng: np.random.Generator, tau_h: float) -> np.ndarray:
    """Unit-variance hourly AR(1), made continuous across the year end by a variance-preserving cross-fade."""
    phi = np.exp(-1.0 / tau_h)
    e = rng.standard_normal(_N + _BLEND_H)
    y = lfilter([np.sqrt(1 - phi**2)], [1, -phi], e, zi=[phi * rng.standard_normal()])[0]
    out = y[:_N].copy()
    theta = 0.5 * np.pi * np.arange(_BLEND_H) / _BLEND_H
    out[:_BLEND_H] = np.cos(theta) * y[_N:] + np.sin(theta) * y[:_BLEND_H]
    return out


def _daily_range(t: np.ndarray) -> np.ndarray:
    d = t.reshape(365, 24)
    return d.max(axis=1) - d.min(axis=1)


def _monthly_daily_mean(x_daily: np.ndarray) -> np.ndarray:
    month_of_day = _MONTH_OF_HOUR[::24]
    return np.bincount(month_of_day, weights=x_daily, minlength=12) / _DAYS


# --------------------------------------------------------------------------- typical year
@cache
def _typical_year_cached(climate: str) -> xr.Dataset:
    clim = load_climate(climate)
    var = clim.variability
    op = _mean_preserving_operator()
    rng = np.random.default_rng(var.seed)
    z_t = _ar1_periodic(rng, var.tau_h)
    z_d = _ar1_periodic(rng, var.tau_h)

    mean_t = op @ np.asarray(clim.monthly.t_dry_mean_c)
    anom_t = _remove_monthly_means(_seasonal(var.sigma_t_dry_winter_k, var.sigma_t_dry_summer_k) * z_t)
    shape = _diurnal_shape(clim)
    target_range = np.asarray(clim.monthly.t_dry_high_mean_c) - np.asarray(clim.monthly.t_dry_low_mean_c)
    amp_m = target_range.copy()
    for _ in range(3):
        t_dry = mean_t + anom_t + (op @ amp_m) * shape
        amp_m *= target_range / _monthly_daily_mean(_daily_range(t_dry))
    t_dry = mean_t + anom_t + (op @ amp_m) * shape

    mean_d = op @ np.asarray(clim.dew_point.t_dew_mean_c)
    z_dew = var.corr_dew_dry_pu * z_t + np.sqrt(1 - var.corr_dew_dry_pu**2) * z_d
    p_atm = float(psychro.station_pressure_pa(clim.station.elevation_m))

    def dew(sigma_summer: float) -> np.ndarray:
        td = mean_d + _remove_monthly_means(_seasonal(var.sigma_t_dew_winter_k, sigma_summer) * z_dew)
        for _ in range(2):  # capping at the dry bulb lowers humid months' means: put the deficit back
            td = np.minimum(td, t_dry)
            td = td + op @ (np.asarray(clim.dew_point.t_dew_mean_c) - _monthly_mean(td))
        return np.minimum(td, t_dry)

    warm = (
        t_dry >= clim.design.t_wet_evaporation_0p4_c - 6.0
    )  # wet bulb <= dry bulb: only these can be in the tail

    def wb_996(sigma_summer: float) -> float:
        wb = t_dry.copy()
        wb[warm] = psychro.wet_bulb_c(
            t_dry[warm], t_dew_c=dew(sigma_summer)[warm], p_atm_pa=p_atm, tol_k=1e-4
        )
        return float(np.quantile(wb, 0.996))

    target = clim.design.t_wet_evaporation_0p4_c
    lo, hi = 0.0, 3.0 * max(var.sigma_t_dew_summer_k, 1.0)
    f_lo, f_hi = wb_996(lo) - target, wb_996(hi) - target
    if f_lo < 0 < f_hi:
        sigma_dew_summer = brentq(lambda s: wb_996(s) - target, lo, hi, xtol=1e-3)
        calibrated = True
    else:  # target out of reach: keep the shipped value and say so
        sigma_dew_summer, calibrated = var.sigma_t_dew_summer_k, False
    t_dew = dew(sigma_dew_summer)

    st = clim.station
    attrs = {
        "station": f"{st.name} (synthesised typical year)", "state": st.state, "country": st.country,
        "data_source": "synthesised", "wmo": st.wmo, "lat_deg": st.lat_deg, "lon_deg": st.lon_deg,
        "tz_utc_h": st.tz_utc_h, "elevation_m": st.elevation_m, "source": str(climate_path(climate)),
        "climate": climate,
        "time_convention": "hour-beginning labels on non-leap year 2025, aligned with read_epw",
        "seed": var.seed, "tau_h": var.tau_h,
        "sigma_t_dew_summer_k": round(float(sigma_dew_summer), 4),
        "wet_bulb_0p4_calibrated": int(calibrated),
        "t_wet_0p4_target_c": target,
    }  # fmt: skip
    ds = make_dataset(year_index(), t_dry, t_dew, np.full(_N, p_atm), attrs)
    ds.attrs["t_wet_0p4_c"] = round(float(ds.t_wet_c.quantile(0.996)), 3)
    for v in ds.data_vars.values():
        v.values.setflags(write=False)
    return ds


def typical_year(climate: str = "memphis") -> xr.Dataset:
    """Hourly typical year (8,760 steps, 2025 labels) synthesised from ``data/climate/<climate>.yaml``.

    Same variables, coordinates and attribute keys as :func:`read_epw`. Deterministic (seeded). The
    result is computed once per process and copied on every call.
    """
    return _typical_year_cached(climate).copy(deep=True)


# --------------------------------------------------------------------------- utilities
def heat_wave(
    ds: xr.Dataset, start, hours: float, delta_t_k: float, *, hold: str = "t_dew_c", ramp_hours: float = 0.0
) -> xr.Dataset:
    """Return a copy of ``ds`` with the dry bulb raised by ``delta_t_k`` for ``hours`` from ``start``.

    ``hold="t_dew_c"`` (default) keeps the dew point, i.e. the moisture content of the air mass, so the
    relative humidity falls and the wet bulb rises by roughly a third of ``delta_t_k`` (the usual case of
    a hot, dry-ish spell). ``hold="rh_pct"`` keeps the relative humidity instead: dew point and wet bulb
    rise almost as much as the dry bulb (a severe case for evaporative heat rejection). Wet bulb and the
    other humidity variable are recomputed. Steps with ``start <= time < start + hours`` are changed; with
    ``ramp_hours > 0`` the shift rises linearly over the first and falls over the last ``ramp_hours``.
    """
    if hold not in ("t_dew_c", "rh_pct"):
        raise ValueError(f"heat_wave: hold={hold!r}, expected 't_dew_c' or 'rh_pct'")
    if hours < 0 or not 0 <= ramp_hours <= hours / 2:
        raise ValueError(
            f"heat_wave: need hours >= 0 and 0 <= ramp_hours <= hours/2, got {hours}, {ramp_hours}"
        )
    t0 = pd.Timestamp(start)
    t = pd.DatetimeIndex(ds.indexes["time"])
    elapsed_h = np.asarray((t - t0) / pd.Timedelta(hours=1), dtype=float)
    inside = (elapsed_h >= 0) & (elapsed_h < hours)
    if hours > 0 and not inside.any():
        raise ValueError(
            f"heat_wave: window {t0} + {hours} h lies outside the weather data ({t[0]} .. {t[-1]})"
        )
    weight = inside.astype(float)
    if ramp_hours > 0:
        weight *= np.clip(np.minimum(elapsed_h, hours - elapsed_h) / ramp_hours, 0, 1)
    out = ds.copy(deep=True)
    w = weight != 0  # recompute only the changed steps: everything else stays bit-identical
    t_dry = ds.t_dry_c.values[w] + delta_t_k * weight[w]
    if hold == "t_dew_c":
        t_dew = np.minimum(ds.t_dew_c.values[w], t_dry)
        rh = psychro.relative_humidity_pct(t_dry, t_dew)
    else:
        rh = ds.rh_pct.values[w]
        t_dew = psychro.dew_point_c(t_dry, rh)
    for name, v in (
        ("t_dry_c", t_dry),
        ("t_dew_c", t_dew),
        ("rh_pct", rh),
        ("t_wet_c", psychro.wet_bulb_c(t_dry, t_dew_c=t_dew, p_atm_pa=ds.p_atm_pa.values[w])),
    ):
        arr = np.array(out[name].values, dtype=float)  # writable copy
        arr[w] = v
        out[name] = (out[name].dims, arr, out[name].attrs)
    events = list(np.atleast_1d(out.attrs.get("events", [])))
    out.attrs["events"] = [
        *map(str, events),
        f"heat_wave start={t0} hours={hours} delta_t_k={delta_t_k} hold={hold}",
    ]
    return out


def weather_at(ds: xr.Dataset, times) -> xr.Dataset:
    """Weather at arbitrary timestamps, linearly interpolated between the steps of a full-year ``ds``.

    ``ds`` must be a regular series covering one non-leap year from 1 Jan 00:00 (as from ``read_epw`` or
    ``typical_year``). ``times`` (datetime-like, any year, any spacing down to nanoseconds) are mapped to
    their time of year (29 Feb of a leap year repeats 28 Feb) and wrap from 31 Dec back to 1 Jan, so a
    simulation may start anywhere in any year. Cost: a few array operations per variable, no Python
    loop, so 0.1 s steps over hours are cheap.
    """
    t_ds = pd.DatetimeIndex(ds.indexes["time"])
    n = t_ds.size
    step = t_ds[1] - t_ds[0]
    step_ns = step.value
    year_ns = 365 * 86_400 * 10**9
    if (
        n * step_ns != year_ns
        or (t_ds[0].month, t_ds[0].day, t_ds[0].hour) != (1, 1, 0)
        or not (np.all(np.diff(t_ds.asi8) == step_ns))
    ):
        raise ValueError(
            "weather_at: ds must be a regular series covering one non-leap year from 1 Jan 00:00"
        )
    tq = pd.DatetimeIndex(np.atleast_1d(np.asarray(times, dtype="datetime64[ns]")))
    year_start = tq.to_period("Y").to_timestamp().as_unit("ns")
    since = np.asarray(tq.asi8 - year_start.asi8, dtype=np.int64)
    leap = np.asarray(tq.is_leap_year)
    since = since - np.where(leap & (since >= 59 * 86_400 * 10**9), 86_400 * 10**9, 0)
    since = np.mod(since, year_ns)
    i0 = since // step_ns
    frac = (since - i0 * step_ns) / step_ns
    i1 = (i0 + 1) % n
    data = {}
    for name, da in ds.data_vars.items():
        if da.dims != ("time",):
            continue
        v = da.values
        data[name] = ("time", v[i0] * (1 - frac) + v[i1] * frac, dict(da.attrs))
    return xr.Dataset(data, coords={"time": ("time", tq, dict(ds["time"].attrs))}, attrs=dict(ds.attrs))


def load_weather(
    spec: str | None, base_dir: str | Path | None = None, *, file: str | Path | None = None
) -> xr.Dataset:
    """The weather named by a scenario's ``weather:`` field.

    ``None`` or ``"memphis-typical"`` (generally ``"<climate>-typical"`` for a shipped
    ``data/climate/<climate>.yaml``) -> :func:`typical_year`; a path ending in ``.epw`` -> :func:`read_epw`,
    relative paths resolved against ``base_dir`` (normally the scenario file's folder). ``file`` names the
    scenario file in error messages.
    """
    where = str(file) if file is not None else str(base_dir or "<weather>")
    if spec is None:
        return typical_year("memphis")
    spec = str(spec).strip()
    if spec.lower().endswith(".epw"):
        p = Path(spec).expanduser()
        if not p.is_absolute():
            p = Path(base_dir or ".") / p
        if not p.is_file():
            raise InputError.one(
                where,
                "weather",
                f"EPW file {str(p)!r} not found (relative paths are taken from the scenario's folder)",
            )
        return read_epw(p)
    if spec.endswith("-typical") and climate_path(spec[: -len("-typical")]).is_file():
        return typical_year(spec[: -len("-typical")])
    known = sorted(f"{p.stem}-typical" for p in (data_dir() / "climate").glob("*.yaml"))
    raise InputError.one(
        where, "weather", f"found {spec!r}, expected one of {known} or a path to an .epw file"
    )

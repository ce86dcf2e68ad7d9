"""Reader for EnergyPlus weather (EPW) files.

Format: EnergyPlus "Auxiliary Programs", chapter "Weather Converter Program / EnergyPlus Weather File
(EPW) Data Dictionary": eight header records (LOCATION ... DATA PERIODS) then one comma-separated record of
35 fields per interval.

Time convention (documented choice): EPW stamps each record with the hour that *ends* its interval
(hour 1 = 00:00-01:00). ``read_epw`` labels each record with the *start* of its interval, on a fixed
non-leap calendar year 2025: EPW month 1, day 1, hour 1 -> 2025-01-01T00:00, hour 24 of 31 Dec ->
2025-12-31T23:00. A TMY's source years (1973-2005 mixed) are discarded. A leap-year file's 29 February
is dropped so every year has 8,760 hourly steps. The value stored at a label is treated as the
value for that hour (``twin.weather.weather_at`` interpolates linearly between labels); for the
instantaneous quantities of an EPW (dry bulb, dew point) this places the observation up to one hour
early, a phase shift that is negligible for cooling-plant and energy studies.

Missing-value codes of the data dictionary (dry bulb / dew point 99.9, RH 999, pressure 999999) are
filled: dry bulb and dew point by linear interpolation in time (dew point from RH when that is present),
RH from dry bulb and dew point, pressure by interpolation or from the station elevation. The number of
filled values per variable is kept in ``attrs``. Values outside the data dictionary's valid ranges raise
``InputError``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from twin.errors import InputError
from twin.weather import psychro

YEAR = 2025
N_FIELDS = 35
N_HEADER = 8

#: The 35 EPW data fields, in order (short names used in error messages).
EPW_FIELDS = (
    "year", "month", "day", "hour", "minute", "data_source_flags", "dry_bulb", "dew_point",
    "relative_humidity", "atmospheric_station_pressure", "extraterrestrial_horizontal_radiation",
    "extraterrestrial_direct_normal_radiation", "horizontal_infrared_radiation_intensity",
    "global_horizontal_radiation", "direct_normal_radiation", "diffuse_horizontal_radiation",
    "global_horizontal_illuminance", "direct_normal_illuminance", "diffuse_horizontal_illuminance",
    "zenith_luminance", "wind_direction", "wind_speed", "total_sky_cover", "opaque_sky_cover",
    "visibility", "ceiling_height", "present_weather_observation", "present_weather_codes",
    "precipitable_water", "aerosol_optical_depth", "snow_depth", "days_since_last_snowfall", "albedo",
    "liquid_precipitation_depth", "liquid_precipitation_quantity",
)  # fmt: skip

# columns read: index -> (field, valid min, valid max, missing code or None)
_USED = {
    1: ("month", 1, 12, None),
    2: ("day", 1, 31, None),
    3: ("hour", 1, 24, None),
    4: ("minute", 0, 60, None),
    6: ("dry_bulb", -70.0, 70.0, 99.9),
    7: ("dew_point", -70.0, 70.0, 99.9),
    8: ("relative_humidity", 0.0, 110.0, 999.0),
    9: ("atmospheric_station_pressure", 31_000.0, 120_000.0, 999_999.0),
}
_HEADER_KEYS = (
    "LOCATION", "DESIGN CONDITIONS", "TYPICAL/EXTREME PERIODS", "GROUND TEMPERATURES",
    "HOLIDAYS/DAYLIGHT SAVINGS", "COMMENTS 1", "COMMENTS 2", "DATA PERIODS",
)  # fmt: skip

VARIABLE_ATTRS = {
    "t_dry_c": {"units": "degC", "long_name": "outdoor dry-bulb temperature"},
    "t_wet_c": {"units": "degC", "long_name": "outdoor thermodynamic wet-bulb temperature"},
    "t_dew_c": {"units": "degC", "long_name": "outdoor dew-point temperature"},
    "rh_pct": {"units": "%", "long_name": "outdoor relative humidity (w.r.t. liquid water)"},
    "p_atm_pa": {"units": "Pa", "long_name": "atmospheric station pressure"},
}


def year_index(steps_per_hour: int = 1) -> pd.DatetimeIndex:
    """Hour-beginning timestamps of the fixed non-leap year 2025 (8,760 x ``steps_per_hour``)."""
    return pd.date_range(
        f"{YEAR}-01-01", periods=8760 * steps_per_hour, freq=pd.Timedelta(hours=1) / steps_per_hour, unit="ns"
    )


def make_dataset(times, t_dry_c, t_dew_c, p_atm_pa, attrs: dict, rh_pct=None) -> xr.Dataset:
    """Assemble the weather Dataset (shared by the EPW reader and the synthesiser); wet bulb is computed."""
    t_dry_c = np.asarray(t_dry_c, dtype=float)
    t_dew_c = np.minimum(np.asarray(t_dew_c, dtype=float), t_dry_c)
    p_atm_pa = np.broadcast_to(np.asarray(p_atm_pa, dtype=float), t_dry_c.shape)
    if rh_pct is None:
        rh_pct = psychro.relative_humidity_pct(t_dry_c, t_dew_c)
    t_wet_c = psychro.wet_bulb_c(t_dry_c, t_dew_c=t_dew_c, p_atm_pa=p_atm_pa)
    data = {"t_dry_c": t_dry_c, "t_wet_c": t_wet_c, "t_dew_c": t_dew_c, "rh_pct": np.asarray(rh_pct, float),
            "p_atm_pa": np.array(p_atm_pa)}  # fmt: skip
    ds = xr.Dataset(
        {k: ("time", v, dict(VARIABLE_ATTRS[k])) for k, v in data.items()},
        coords={
            "time": (
                "time",
                pd.DatetimeIndex(times),
                {"long_name": "start of interval (local standard time)"},
            )
        },
        attrs=attrs,
    )
    return ds


def _fail(path, key: str, message: str):
    raise InputError.one(path, key, message)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        _fail(path, "", "file not found (expected an EnergyPlus .epw weather file)")
    except OSError as e:
        _fail(path, "", f"cannot be read ({e.strerror})")
    if b"\x00" in raw[:4096]:
        _fail(path, "line 1", "binary data found; expected an EnergyPlus EPW text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _num(path, line_no: int, field: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        _fail(path, f"line {line_no}, field {field}", f"found {text!r}, expected a number")


def read_epw(path: str | Path) -> xr.Dataset:
    """Read an EnergyPlus EPW weather file into an hourly (or sub-hourly) ``xr.Dataset``.

    Dimension ``time`` (hour-beginning timestamps on the non-leap year 2025, see module docstring);
    variables ``t_dry_c``, ``t_wet_c`` (computed), ``t_dew_c``, ``rh_pct``, ``p_atm_pa`` with ``units``
    and ``long_name``; attrs ``station``, ``state``, ``country``, ``wmo``, ``lat_deg``, ``lon_deg``,
    ``tz_utc_h``, ``elevation_m``, ``source`` (the file path), ``data_source`` (EPW data-source field).

    Raises ``InputError`` naming the file, the line and field, and what was expected, for a missing,
    truncated or malformed file.
    """
    path = Path(path)
    text = _read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n", N_HEADER)
    if len(lines) <= N_HEADER:
        _fail(path, f"line {len(lines)}", f"file ends after {len(lines)} line(s); expected {N_HEADER} "
              "EPW header records (LOCATION ... DATA PERIODS) followed by hourly data")  # fmt: skip
    header, body = lines[:N_HEADER], lines[N_HEADER]
    for i, (line, key) in enumerate(zip(header, _HEADER_KEYS, strict=True)):
        if line.split(",", 1)[0].strip().upper() != key:
            _fail(path, f"line {i + 1}", f"found {line[:40]!r}, expected the EPW header record {key!r}")

    loc = next(csv.reader([header[0]]))
    if len(loc) < 10:
        _fail(path, "line 1, LOCATION", f"found {len(loc)} fields, expected 10 "
              "(LOCATION,city,state,country,source,WMO,latitude,longitude,time zone,elevation)")  # fmt: skip
    lat, lon, tz, elev = (_num(path, 1, n, loc[i]) for i, n in
                          ((6, "latitude"), (7, "longitude"), (8, "time_zone"), (9, "elevation")))  # fmt: skip
    periods = next(csv.reader([header[7]]))
    steps_per_hour = int(_num(path, 8, "records_per_hour", periods[2])) if len(periods) > 2 else 1
    if not 1 <= steps_per_hour <= 60 or 60 % steps_per_hour:
        _fail(path, "line 8, field records_per_hour", f"found {steps_per_hour}, expected a divisor of 60")

    body = body.rstrip("\n")
    if not body.strip():
        _fail(
            path, f"line {N_HEADER + 1}", "no data records; expected 8760 hourly records after DATA PERIODS"
        )
    _check_field_counts(path, body)

    cols = sorted(_USED)
    raw = pd.read_csv(io.StringIO(body), header=None, usecols=cols, dtype=str, quoting=csv.QUOTE_NONE,
                      skip_blank_lines=False, keep_default_na=False, engine="c")  # fmt: skip
    vals = {}
    for c in cols:
        field, lo, hi, missing = _USED[c]
        s = raw[c].str.strip()
        v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(np.isnan(v))
        if bad.size:
            r = bad[0]
            _fail(path, f"line {N_HEADER + 1 + r}, field {field}", f"found {s.iloc[r]!r}, expected a number"
                  + (f" ({bad.size} such values in this field)" if bad.size > 1 else ""))  # fmt: skip
        is_missing = v >= missing if missing is not None else np.zeros(v.shape, bool)
        out = np.flatnonzero(((v < lo) | (v > hi)) & ~is_missing)
        if out.size:
            r = out[0]
            _fail(path, f"line {N_HEADER + 1 + r}, field {field}",
                  f"found {v[r]:g}, expected a value in [{lo:g}, {hi:g}]"
                  + (f" or the missing-value code {missing:g}" if missing is not None else ""))  # fmt: skip
        vals[field] = np.where(is_missing, np.nan, v)

    month, day, hour, minute = (vals[k].astype(int) for k in ("month", "day", "hour", "minute"))
    keep = ~((month == 2) & (day == 29))
    line_no = np.flatnonzero(keep) + N_HEADER + 1
    month, day, hour, minute = month[keep], day[keep], hour[keep], minute[keep]
    # interval start: hour-ending stamp minus one interval
    if steps_per_hour == 1:
        offset_min = (hour - 1) * 60
    else:
        minute = np.where(minute == 0, 60, minute)
        offset_min = (hour - 1) * 60 + minute - 60 // steps_per_hour
    try:
        date = pd.to_datetime({"year": np.full(month.shape, YEAR), "month": month, "day": day})
    except (ValueError, OverflowError):
        ok = pd.to_datetime({"year": np.full(month.shape, YEAR), "month": month, "day": day}, errors="coerce")
        r = int(np.flatnonzero(ok.isna())[0])
        _fail(
            path,
            f"line {line_no[r]}, field day",
            f"found {month[r]}/{day[r]}, expected a valid calendar date",
        )
    times = pd.DatetimeIndex(date) + pd.to_timedelta(offset_min, unit="min")
    expected = year_index(steps_per_hour)
    n_exp = len(expected)
    pos = (times - expected[0]) // (expected[1] - expected[0])
    pos = np.asarray(pos)
    if len(pos) != n_exp or not np.array_equal(pos, np.arange(n_exp)):
        mism = np.flatnonzero(pos[:n_exp] != np.arange(min(len(pos), n_exp)))
        if mism.size:
            r = int(mism[0])
            _fail(path, f"line {line_no[r]}, fields month/day/hour",
                  f"found {month[r]}/{day[r]} hour {hour[r]}, expected {_epw_stamp(expected[r], steps_per_hour)} "
                  f"(records must run consecutively through the year)")  # fmt: skip
        if len(pos) < n_exp:
            _fail(path, f"line {line_no[-1] + 1}",
                  f"file ends after {len(pos)} records, expected {n_exp} "
                  f"(next expected {_epw_stamp(expected[len(pos)], steps_per_hour)}); truncated?")  # fmt: skip
        _fail(
            path,
            f"line {line_no[n_exp]}",
            f"found more than {n_exp} records, expected exactly one calendar year",
        )

    t_dry = vals["dry_bulb"][keep]
    t_dew = vals["dew_point"][keep]
    rh = vals["relative_humidity"][keep]
    p = vals["atmospheric_station_pressure"][keep]
    filled = {}
    if np.isnan(t_dry).all():
        _fail(
            path,
            "field dry_bulb",
            "every value is the missing code 99.9; expected measured dry-bulb temperatures",
        )
    filled["t_dry_c"] = _fill(t_dry)
    p_missing = np.isnan(p)
    filled["p_atm_pa"] = int(p_missing.sum())
    p = np.where(p_missing, psychro.station_pressure_pa(elev), p) if p_missing.all() else p
    if np.isnan(p).any():
        _fill(p)
    dew_missing = np.isnan(t_dew)
    from_rh = dew_missing & ~np.isnan(rh)
    t_dew[from_rh] = psychro.dew_point_c(t_dry[from_rh], rh[from_rh])
    filled["t_dew_c"] = int(dew_missing.sum())
    if np.isnan(t_dew).all():
        _fail(path, "fields dew_point/relative_humidity", "all missing; expected a humidity record")
    _fill(t_dew)
    t_dew = np.minimum(t_dew, t_dry)
    rh_missing = np.isnan(rh)
    filled["rh_pct"] = int(rh_missing.sum())
    rh = np.where(rh_missing, psychro.relative_humidity_pct(t_dry, t_dew), np.minimum(rh, 100.0))

    attrs = {
        "station": loc[1].strip(), "state": loc[2].strip(), "country": loc[3].strip(),
        "data_source": loc[4].strip(), "wmo": loc[5].strip(), "lat_deg": lat, "lon_deg": lon,
        "tz_utc_h": tz, "elevation_m": elev, "source": str(path),
        "time_convention": "hour-beginning labels on non-leap year 2025; EPW hour h -> h-1:00",
        **{f"n_filled_{k}": v for k, v in filled.items()},
    }  # fmt: skip
    return make_dataset(expected, t_dry, t_dew, p, attrs, rh_pct=rh)


def _epw_stamp(ts: pd.Timestamp, steps_per_hour: int) -> str:
    end = ts + pd.Timedelta(minutes=60 // steps_per_hour)
    hour = end.hour if end.day == ts.day else 24
    return f"{ts.month}/{ts.day} hour {hour if steps_per_hour == 1 else (ts.hour + 1)}"


def _fill(v: np.ndarray) -> int:
    """Fill NaNs in place by periodic linear interpolation; return how many were filled."""
    nan = np.isnan(v)
    n = int(nan.sum())
    if n:
        idx = np.arange(v.size)
        v[nan] = np.interp(idx[nan], idx[~nan], v[~nan], period=v.size)
    return n


def _check_field_counts(path: Path, body: str) -> None:
    """Every data record must have exactly 35 fields (vectorised count of commas per line)."""
    b = np.frombuffer(body.encode("latin-1", errors="replace"), dtype=np.uint8)
    nl = np.flatnonzero(b == 10)
    commas = np.flatnonzero(b == 44)
    ends = np.append(nl, b.size)
    counts = np.diff(np.searchsorted(commas, np.concatenate(([0], ends)))) + 1
    # (a trailing empty line after the last record has 1 'field')
    bad = np.flatnonzero(counts != N_FIELDS)
    if bad.size:
        r = int(bad[0])
        _fail(path, f"line {N_HEADER + 1 + r}",
              f"found {counts[r]} comma-separated fields, expected {N_FIELDS} (EPW data record)"
              + ("; blank line inside the data" if counts[r] == 1 else ""))  # fmt: skip

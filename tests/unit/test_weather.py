"""Weather layer: psychrometrics, EPW reading and its errors, the synthesised Memphis year, heat waves,
interpolation onto simulation time steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from twin.errors import InputError
from twin.weather import (
    dew_point_c,
    heat_wave,
    humidity_ratio_kg_kg,
    load_weather,
    p_sat_pa,
    read_epw,
    relative_humidity_pct,
    station_pressure_pa,
    typical_year,
    weather_at,
    wet_bulb_c,
)

pytestmark = pytest.mark.unit

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
TMY3 = SHARED / "data" / "weather" / "USA_TN_Memphis.Intl.AP.723340_TMY3.epw"
needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason=f"shared reference data {SHARED.resolve()} is absent (Memphis TMY3 EPW needed)",
)


@pytest.fixture(scope="module")
def tmy3():
    return read_epw(TMY3)


@pytest.fixture(scope="module")
def synth():
    return typical_year("memphis")


def _epw_text(ds, n_records: int | None = None) -> str:
    """A valid 35-field EPW written from a weather Dataset (hour-beginning label L -> EPW hour L+1)."""
    header = [
        "LOCATION,Testville,TN,USA,SYNTH,999999,35.07,-89.98,-6.0,81.0",
        "DESIGN CONDITIONS,0",
        "TYPICAL/EXTREME PERIODS,0",
        "GROUND TEMPERATURES,0",
        "HOLIDAYS/DAYLIGHT SAVINGS,No,0,0,0",
        "COMMENTS 1,written by test_weather",
        "COMMENTS 2,",
        "DATA PERIODS,1,1,Data,Wednesday, 1/ 1,12/31",
    ]
    t = pd.DatetimeIndex(ds.indexes["time"])
    rest = ",".join(["0"] * 25)
    rows = [
        f"1999,{ts.month},{ts.day},{ts.hour + 1},60,A7A7,{tdb:.1f},{tdp:.1f},{rh:.0f},{p:.0f},{rest}"
        for ts, tdb, tdp, rh, p in zip(
            t, ds.t_dry_c.values, ds.t_dew_c.values, ds.rh_pct.values, ds.p_atm_pa.values, strict=True
        )
    ]
    return "\n".join(header + rows[:n_records]) + "\n"


@pytest.fixture(scope="module")
def epw_lines(synth):
    return _epw_text(synth).splitlines()


# ----------------------------------------------------------------------------- (3) psychrometrics
def test_saturation_pressure_matches_steam_tables():
    # ASHRAE Fundamentals ch. 1 table 3 / IAPWS: 0.01 degC 611.7 Pa, 20 degC 2339.2 Pa, 30 degC 4246.9 Pa,
    # 35 degC 5629.0 Pa
    got = p_sat_pa(np.array([0.01, 20.0, 30.0, 35.0]))
    np.testing.assert_allclose(got, [611.7, 2339.2, 4246.9, 5629.0], rtol=1e-3)


def test_wet_bulb_hand_checked_values():
    # 35 degC, 40 % RH, 101325 Pa. By hand: p_w = 0.4 * 5629 = 2252 Pa, W = 0.621945 * 2252 / 99073 =
    # 0.01414, h = 1.006*35 + W*(2501 + 1.86*35) = 71.5 kJ/kg; at t* = 23.93: p_ws = 2972 Pa, W_s = 0.01876,
    # h_s = 71.8 = h + (W_s - W) * 4.186 * t* -> t* = 23.9 degC (the brief's "~23.7" is a chart reading).
    assert wet_bulb_c(35.0, rh_pct=40.0, p_atm_pa=101_325.0) == pytest.approx(23.93, abs=0.05)
    # 25 degC, 50 %: W = 0.009883, h = 50.33 kJ/kg; at t* = 17.89 W_s = 0.012842, h_s = 50.55 = 50.33 + 0.22
    assert wet_bulb_c(25.0, rh_pct=50.0) == pytest.approx(17.89, abs=0.05)
    # saturated air: wet bulb = dry bulb, at any temperature
    t = np.array([-5.0, 10.0, 20.0, 40.0])
    np.testing.assert_allclose(wet_bulb_c(t, rh_pct=100.0), t, atol=1e-6)
    np.testing.assert_allclose(wet_bulb_c(t, t_dew_c=t), t, atol=1e-6)
    # very dry air: wet bulb far below dry bulb but above the dew point
    wb = wet_bulb_c(40.0, rh_pct=5.0)
    assert dew_point_c(40.0, 5.0) < wb < 20.0


def test_wet_bulb_round_trip_through_the_psychrometric_equation():
    # choose (t, t*) = (30, 20) degC at 101325 Pa, get W from ASHRAE eq. 33 written out independently here
    p, t, ts = 101_325.0, 30.0, 20.0
    ws = 0.621945 * 2339.2 / (p - 2339.2)
    w = ((2501 - 2.326 * ts) * ws - 1.006 * (t - ts)) / (2501 + 1.86 * t - 4.186 * ts)
    assert w == pytest.approx(0.01052, abs=2e-5)
    p_w = w * p / (0.621945 + w)
    ln = np.log(p_w / 611.2)
    t_dew = 243.12 * ln / (17.62 - ln)  # Magnus, good to ~0.05 K: refine against p_sat_pa by bisection
    lo, hi = t_dew - 1, t_dew + 1
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if p_sat_pa(mid) < p_w else (lo, mid)
    assert wet_bulb_c(t, t_dew_c=lo, p_atm_pa=p) == pytest.approx(ts, abs=0.01)
    assert humidity_ratio_kg_kg(p_sat_pa(lo), p) == pytest.approx(w, rel=1e-6)


def test_dew_point_rh_and_pressure():
    assert dew_point_c(25.0, 50.0) == pytest.approx(13.86, abs=0.03)
    assert relative_humidity_pct(25.0, dew_point_c(25.0, 50.0)) == pytest.approx(50.0, abs=1e-6)
    # standard atmosphere: 101325 * (1 - 2.25577e-5 * 81)^5.2559 = 100356 Pa (about 12 Pa per metre)
    assert station_pressure_pa(81.0) == pytest.approx(100_356, abs=3)
    assert station_pressure_pa(0.0) == pytest.approx(101_325.0)


def test_wet_bulb_vectorised_and_consistent_with_scalar():
    rng = np.random.default_rng(0)
    t = rng.uniform(-20, 45, 5000)
    rh = rng.uniform(3, 100, 5000)
    wb = wet_bulb_c(t, rh_pct=rh, p_atm_pa=100_000.0)
    assert wb.shape == t.shape
    assert np.all(wb <= t + 1e-9) and np.all(wb >= dew_point_c(t, rh) - 1e-9)
    assert wb[123] == pytest.approx(wet_bulb_c(t[123], rh_pct=rh[123], p_atm_pa=100_000.0), abs=1e-9)


# ----------------------------------------------------------------------------- (1) EPW reading
@needs_shared
def test_read_epw_memphis_tmy3(tmy3):
    ds = tmy3
    assert ds.sizes["time"] == 8760
    assert ds.t_dry_c.mean().item() == pytest.approx(17.0, abs=0.1)
    assert ds.t_dry_c.max().item() == pytest.approx(38.3, abs=1e-9)
    assert ds.t_dry_c.min().item() == pytest.approx(-11.7, abs=1e-9)
    # hour-ending EPW hour 1 of 1 Jan -> 2025-01-01T00:00; first record is 9.4 degC, dew 9.4, 99400 Pa
    assert pd.Timestamp(ds.time.values[0]) == pd.Timestamp("2025-01-01 00:00")
    assert pd.Timestamp(ds.time.values[-1]) == pd.Timestamp("2025-12-31 23:00")
    assert ds.t_dry_c.values[0] == 9.4 and ds.p_atm_pa.values[0] == 99_400.0
    assert ds.t_dry_c.values[-1] == 5.6  # last record, 31 Dec hour 24
    for name in ("t_dry_c", "t_wet_c", "t_dew_c", "rh_pct", "p_atm_pa"):
        assert ds[name].attrs["units"] and ds[name].attrs["long_name"]
    assert ds.attrs["wmo"] == "723340" and ds.attrs["elevation_m"] == 81.0
    assert ds.attrs["lat_deg"] == 35.07 and ds.attrs["source"] == str(TMY3)
    assert np.all(ds.t_wet_c <= ds.t_dry_c) and np.all(ds.t_wet_c >= ds.t_dew_c)


def test_read_epw_round_trip_of_written_file(tmp_path, synth):
    f = tmp_path / "synth.epw"
    f.write_text(_epw_text(synth))
    ds = read_epw(f)
    assert ds.sizes["time"] == 8760
    np.testing.assert_array_equal(ds.indexes["time"], synth.indexes["time"])
    np.testing.assert_allclose(ds.t_dry_c, synth.t_dry_c, atol=0.05 + 1e-9)
    np.testing.assert_allclose(ds.t_wet_c, synth.t_wet_c, atol=0.1)
    assert ds.attrs["station"] == "Testville"


# ----------------------------------------------------------------------------- (4) bad EPW files
def _write(tmp_path, lines, name="bad.epw"):
    f = tmp_path / name
    f.write_text("\n".join(lines) + "\n")
    return f


def _error(f) -> str:
    with pytest.raises(InputError) as exc:
        read_epw(f)
    msg = str(exc.value)
    assert str(f) in msg, msg
    return msg


def test_truncated_epw(tmp_path, epw_lines):
    f = _write(tmp_path, epw_lines[: 8 + 100])
    msg = _error(f)
    assert "line 109" in msg and "8760" in msg and "1/5 hour 5" in msg, msg


def test_epw_cut_mid_record(tmp_path, epw_lines):
    f = _write(tmp_path, [*epw_lines[:500], epw_lines[500][:40]])
    msg = _error(f)
    assert "line 501" in msg and "expected 35" in msg, msg


def test_not_an_epw(tmp_path):
    f = _write(tmp_path, ["station,temp", "a,1", "b,2"] * 5, name="notes.csv")
    msg = _error(f)
    assert "line 1" in msg and "LOCATION" in msg, msg
    assert "line 3" in _error(
        _write(tmp_path, ["LOCATION,x,y,z,s,1,35,-90,-6,81", "hello"], name="short.epw")
    )


def test_non_numeric_dry_bulb(tmp_path, epw_lines):
    lines = list(epw_lines)
    fields = lines[122].split(",")  # file line 123
    fields[6] = "warm"
    lines[122] = ",".join(fields)
    msg = _error(_write(tmp_path, lines))
    assert "line 123, field dry_bulb" in msg and "'warm'" in msg and "expected a number" in msg, msg


def test_wrong_field_count_and_missing_row(tmp_path, epw_lines):
    lines = list(epw_lines)
    lines[199] = lines[199].rsplit(",", 1)[0]  # file line 200 loses its last field
    msg = _error(_write(tmp_path, lines))
    assert "line 200" in msg and "found 34" in msg and "expected 35" in msg, msg
    lines = list(epw_lines)
    del lines[499]  # file line 500 = data record 491 = 1/21 hour 12 is missing; line 500 now holds hour 13
    msg = _error(_write(tmp_path, lines, name="gap.epw"))
    assert "line 500" in msg and "found 1/21 hour 13, expected 1/21 hour 12" in msg, msg


def test_out_of_range_and_missing_codes(tmp_path, epw_lines):
    lines = list(epw_lines)
    fields = lines[300].split(",")
    fields[6] = "85.0"
    lines[300] = ",".join(fields)
    msg = _error(_write(tmp_path, lines))
    assert "line 301, field dry_bulb" in msg and "[-70, 70]" in msg, msg
    # the EPW missing-value code 99.9 is filled by interpolation in time, and counted
    lines = list(epw_lines)
    before, after = float(lines[299].split(",")[6]), float(lines[301].split(",")[6])
    fields = lines[300].split(",")
    fields[6] = "99.9"
    lines[300] = ",".join(fields)
    ds = read_epw(_write(tmp_path, lines, name="gap99.epw"))
    assert ds.t_dry_c.values[292] == pytest.approx(0.5 * (before + after))
    assert ds.attrs["n_filled_t_dry_c"] == 1


def test_missing_file_is_input_error(tmp_path):
    f = tmp_path / "nowhere.epw"
    with pytest.raises(InputError, match="not found"):
        read_epw(f)


# ----------------------------------------------------------------------------- (2) synthesised year
@needs_shared
def test_synth_reproduces_tmy3_monthly_means_and_wet_bulb_tail(synth, tmy3):
    assert synth.sizes["time"] == 8760
    np.testing.assert_array_equal(synth.indexes["time"], tmy3.indexes["time"])
    m_s = synth.t_dry_c.groupby("time.month").mean().values
    m_t = tmy3.t_dry_c.groupby("time.month").mean().values
    err = m_s - m_t
    print("\nmonthly mean dry bulb synth - TMY3 [K]:", np.round(err, 3))
    assert np.all(np.abs(err) < 1.0)
    wb_s = float(np.quantile(synth.t_wet_c.values, 0.996))
    wb_t = float(np.quantile(tmy3.t_wet_c.values, 0.996))
    print(f"0.4 % wet bulb: synth {wb_s:.2f} degC, TMY3 {wb_t:.2f} degC, ASHRAE 2009 26.8 degC")
    assert abs(wb_s - wb_t) < 1.0
    # dew points were derived from the TMY3: monthly means must come back
    d_s = synth.t_dew_c.groupby("time.month").mean().values
    d_t = tmy3.t_dew_c.groupby("time.month").mean().values
    assert np.all(np.abs(d_s - d_t) < 0.1)
    # mean daily highs and lows within 0.6 K of the TMY3's every month
    for fn in ("max", "min"):
        daily_s = getattr(synth.t_dry_c.resample(time="1D"), fn)()
        daily_t = getattr(tmy3.t_dry_c.resample(time="1D"), fn)()
        diff = daily_s.groupby("time.month").mean().values - daily_t.groupby("time.month").mean().values
        assert np.all(np.abs(diff) < 0.6), (fn, diff)


def test_synth_matches_ashrae_design_points(synth):
    t, wb = synth.t_dry_c.values, synth.t_wet_c.values
    assert np.quantile(wb, 0.996) == pytest.approx(26.8, abs=0.05)  # evaporation 0.4 %
    assert np.quantile(t, 0.996) == pytest.approx(35.6, abs=0.3)  # cooling 0.4 %
    assert np.quantile(t, 0.004) == pytest.approx(-8.3, abs=0.3)  # heating 99.6 %
    assert t.mean() == pytest.approx(17.0, abs=0.1)
    assert np.all(wb <= t) and np.all(synth.rh_pct.values <= 100.0 + 1e-9)
    # diurnal cycle: July minimum near sunrise (labels 03:00-06:00), maximum mid-afternoon
    july = synth.t_dry_c.sel(time=slice("2025-07-01", "2025-07-31")).values.reshape(31, 24).mean(axis=0)
    assert 3 <= july.argmin() <= 6 and 12 <= july.argmax() <= 16
    # deterministic, continuous across the year end (no jump from 31 Dec 23:00 to 1 Jan 00:00)
    again = typical_year()
    np.testing.assert_array_equal(again.t_dry_c.values, t)
    assert abs(t[0] - t[-1]) < 3.0
    for name in ("t_dry_c", "t_wet_c", "t_dew_c", "rh_pct", "p_atm_pa"):
        assert synth[name].attrs["units"] and synth[name].attrs["long_name"]
    assert synth.attrs["source"].endswith("memphis.yaml")


def test_typical_year_returns_independent_copies():
    a = typical_year()
    a["t_dry_c"].values[:] = 0.0
    assert typical_year().t_dry_c.values.max() > 30.0


# ----------------------------------------------------------------------------- (5) heat wave
@pytest.mark.parametrize("hold", ["t_dew_c", "rh_pct"])
def test_heat_wave_shifts_only_the_window(synth, hold):
    hw = heat_wave(synth, "2025-07-10 12:00", 72, 5.0, hold=hold)
    t = pd.DatetimeIndex(synth.indexes["time"])
    inside = (t >= pd.Timestamp("2025-07-10 12:00")) & (t < pd.Timestamp("2025-07-13 12:00"))
    assert inside.sum() == 72
    d_dry = hw.t_dry_c.values - synth.t_dry_c.values
    np.testing.assert_allclose(d_dry[inside], 5.0, atol=1e-12)
    for name in ("t_dry_c", "t_wet_c", "t_dew_c", "rh_pct"):
        np.testing.assert_array_equal(hw[name].values[~inside], synth[name].values[~inside])
    d_wet = hw.t_wet_c.values[inside] - synth.t_wet_c.values[inside]
    np.testing.assert_allclose(
        hw.t_wet_c.values[inside],
        wet_bulb_c(
            hw.t_dry_c.values[inside], t_dew_c=hw.t_dew_c.values[inside], p_atm_pa=hw.p_atm_pa.values[inside]
        ),
    )
    if hold == "t_dew_c":
        np.testing.assert_array_equal(hw.t_dew_c.values, synth.t_dew_c.values)
        assert np.all(d_wet > 0.5) and np.all(d_wet < 3.0)  # about a third of the 5 K
    else:
        np.testing.assert_allclose(hw.rh_pct.values, synth.rh_pct.values)
        assert np.all(d_wet > 3.5) and np.all(d_wet < 5.0 + 1e-9)
    assert synth.t_dry_c.values[inside].max() < hw.t_dry_c.values[inside].max()  # input left untouched


def test_heat_wave_ramp_and_bad_window(synth):
    hw = heat_wave(synth, "2025-08-01 00:00", 48, 4.0, ramp_hours=12)
    d = (hw.t_dry_c - synth.t_dry_c).sel(time=slice("2025-08-01 00:00", "2025-08-02 23:00")).values
    assert d[0] == 0.0 and d[6] == pytest.approx(2.0) and d[12:37].min() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="outside"):
        heat_wave(synth, "2030-01-01", 24, 3.0)


# ----------------------------------------------------------------------------- (6) weather_at
def test_weather_at_tenth_of_a_second_steps(synth):
    times = pd.date_range("2025-07-10 12:00", periods=36_000, freq="100ms")
    w = weather_at(synth, times)
    assert w.sizes["time"] == 36_000
    v0 = synth.t_dry_c.sel(time="2025-07-10 12:00").item()
    v1 = synth.t_dry_c.sel(time="2025-07-10 13:00").item()
    assert v0 != v1
    expected = v0 + (v1 - v0) * np.arange(36_000) / 36_000
    np.testing.assert_allclose(w.t_dry_c.values, expected, atol=1e-9)
    assert w.t_dry_c.values[18_000] == pytest.approx(0.5 * (v0 + v1))
    lo, hi = min(v0, v1), max(v0, v1)
    assert np.all((w.t_dry_c.values >= lo - 1e-9) & (w.t_dry_c.values <= hi + 1e-9))
    assert w.t_wet_c.attrs["units"] == "degC"
    np.testing.assert_array_equal(w.indexes["time"], times)


def test_weather_at_wraps_and_maps_other_years(synth):
    first, last = synth.t_dry_c.values[0], synth.t_dry_c.values[-1]
    w = weather_at(
        synth,
        pd.to_datetime(["2031-12-31 23:30", "2028-03-01 06:00", "2028-02-29 06:00", "2025-01-01 00:00"]),
    )
    assert w.t_dry_c.values[0] == pytest.approx(0.5 * (first + last))
    mar1 = synth.t_dry_c.sel(time="2025-03-01 06:00").item()
    feb28 = synth.t_dry_c.sel(time="2025-02-28 06:00").item()
    assert w.t_dry_c.values[1] == pytest.approx(mar1) and w.t_dry_c.values[2] == pytest.approx(feb28)
    assert w.t_dry_c.values[3] == first


# ----------------------------------------------------------------------------- climate file errors
def test_bad_climate_file_names_file_key_and_expectation(tmp_path, monkeypatch):
    import yaml

    import twin.weather.synth as synth_mod

    raw = yaml.safe_load(synth_mod.climate_path("memphis").read_text())
    raw["design"]["t_wet_evaporation_0p4"] = raw["design"].pop("t_wet_evaporation_0p4_c")  # unit dropped
    raw["monthly"]["t_dry_mean_c"] = raw["monthly"]["t_dry_mean_c"][:11]  # a month short
    (tmp_path / "climate").mkdir()
    path = tmp_path / "climate" / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setattr(synth_mod, "data_dir", lambda: tmp_path)
    with pytest.raises(InputError) as exc:
        synth_mod.load_climate("broken")
    by_key = {p.key: p.message for p in exc.value.problems}
    assert all(p.file == str(path) for p in exc.value.problems)
    assert "did you mean 't_wet_evaporation_0p4_c'" in by_key["design.t_wet_evaporation_0p4"]
    assert "at least 12 items" in by_key["monthly.t_dry_mean_c"]
    assert "required" in by_key["design.t_wet_evaporation_0p4_c"].lower()


# ----------------------------------------------------------------------------- load_weather
def test_load_weather_specs(tmp_path, synth):
    np.testing.assert_array_equal(load_weather(None, tmp_path).t_dry_c, synth.t_dry_c)
    np.testing.assert_array_equal(load_weather("memphis-typical", tmp_path).t_dry_c, synth.t_dry_c)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "site.epw").write_text(_epw_text(synth))
    ds = load_weather("w/site.epw", tmp_path)
    assert ds.attrs["source"] == str(tmp_path / "w" / "site.epw")
    with pytest.raises(InputError, match="not found"):
        load_weather("w/other.epw", tmp_path, file="scen.yaml")
    with pytest.raises(InputError, match="memphis-typical"):
        load_weather("atlantis-typical", tmp_path, file="scen.yaml")


@needs_shared
def test_load_weather_relative_epw_path(tmy3):
    ds = load_weather(TMY3.name, TMY3.parent)
    np.testing.assert_array_equal(ds.t_dry_c.values, tmy3.t_dry_c.values)

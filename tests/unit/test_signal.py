"""Signal KPIs against series whose answers a hand calculation fixes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.kpi.signal import band_energy, block_means_kw, load_factor, peak_demand_kw, ramp_rates, swing_mw

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("dt_s", [0.1, 1.0])
def test_step_of_10_mw_is_10_mw_per_step(dt_s):
    p_kw = np.r_[np.full(1000, 50_000.0), np.full(1000, 60_000.0)]
    r = ramp_rates(p_kw, dt_s)
    assert r["ramp_up_max_mw_s"] == pytest.approx(10.0 / dt_s)  # 10 MW in one step
    assert r["ramp_down_max_mw_s"] == 0.0
    assert r["ramp_up_max_mw_min"] == pytest.approx(10.0)  # the whole step lies inside one minute
    assert r["ramp_abs_p50_mw_s"] == 0.0


def test_falling_ramp_and_percentiles():
    # 2 MW/s down for 100 s, then flat for 80 s, sampled every second: 100 of 180 steps ramp
    p_kw = np.r_[np.linspace(300_000.0, 100_000.0, 101), np.full(80, 100_000.0)]
    r = ramp_rates(p_kw, 1.0)
    assert r["ramp_down_max_mw_s"] == pytest.approx(2.0)
    assert r["ramp_up_max_mw_s"] == 0.0
    assert r["ramp_down_max_mw_min"] == pytest.approx(120.0)  # 2 MW/s over a full minute
    assert r["ramp_abs_p50_mw_s"] == pytest.approx(2.0)  # most steps ramp
    assert r["ramp_abs_p99_mw_s"] == pytest.approx(2.0)


def test_hourly_steps_scale_to_mw_per_min():
    r = ramp_rates(np.array([0.0, 60_000.0, 60_000.0]), 3600.0)  # 60 MW in an hour
    assert r["ramp_up_max_mw_min"] == pytest.approx(1.0)
    assert r["ramp_up_max_mw_s"] == pytest.approx(60.0 / 3600.0)


def test_sine_of_1_hz_lands_in_the_low_band_only():
    dt = 0.01  # Nyquist 50 Hz, so the 3-30 Hz band is visible
    t = np.arange(0, 600.0, dt)
    amp_mw = 20.0
    p_kw = 100_000.0 + 1000.0 * amp_mw * np.sin(2 * np.pi * 1.0 * t)
    e = band_energy(p_kw, dt)
    assert e[(0.1, 2.0)] == pytest.approx(amp_mw**2 / 2, rel=0.02)  # variance of a sine: A^2/2 = 200 MW^2
    assert e[(3.0, 30.0)] < 1e-6 * e[(0.1, 2.0)]


def test_sine_of_10_hz_lands_in_the_high_band_only():
    dt = 0.01
    t = np.arange(0, 120.0, dt)
    e = band_energy(5000.0 * np.sin(2 * np.pi * 10.0 * t), dt)
    assert e[(3.0, 30.0)] == pytest.approx(12.5, rel=0.02)  # (5 MW)^2 / 2
    assert e[(0.1, 2.0)] < 1e-6 * e[(3.0, 30.0)]


def test_band_above_nyquist_is_nan_and_linear_trend_is_ignored():
    t = np.arange(0, 600.0, 0.1)  # Nyquist 5 Hz
    p_kw = 1000.0 * t  # a pure ramp: detrended, no oscillation at all
    e = band_energy(p_kw, 0.1, ((0.1, 2.0), (6.0, 30.0)))
    assert math.isnan(e[(6.0, 30.0)])
    assert e[(0.1, 2.0)] < 1e-9


def test_peak_demand_is_clock_aligned_15_min_average():
    # 1-minute samples over an hour: 10 MW, except 20 MW during minutes 10..24
    p_kw = np.full(60, 10_000.0)
    p_kw[10:25] = 20_000.0
    # blocks [0,15): 5 of 15 minutes at 20 MW -> 13.33; [15,30): 10 of 15 -> 16.67; a rolling window would say 20
    np.testing.assert_allclose(block_means_kw(p_kw, 60.0), [40_000 / 3, 50_000 / 3, 10_000.0, 10_000.0])
    assert peak_demand_kw(p_kw, 60.0) == pytest.approx(50_000 / 3)
    # shift the clock by 10 minutes: series minutes 10..24 are clock minutes 20..34; block [15,30) holds
    # clock minutes 20..29 at 20 MW and 15..19 at 10 MW -> 16.67 again
    assert peak_demand_kw(p_kw, 60.0, t0_s=600.0) == pytest.approx(50_000 / 3)
    # shift by 5 minutes: series minutes 10..24 = clock minutes 15..29, a whole block at 20 MW
    assert peak_demand_kw(p_kw, 60.0, t0_s=300.0) == pytest.approx(20_000.0)


def test_load_factor_of_a_known_series():
    p_kw = np.full(60, 10_000.0)
    p_kw[10:25] = 20_000.0
    # mean = (45*10 + 15*20)/60 = 12.5 MW; peak 16.67 MW -> 0.75
    assert load_factor(p_kw, 60.0) == pytest.approx(0.75)
    assert load_factor(np.full(100, 7.0), 1.0) == pytest.approx(1.0)


def test_swing_within_windows():
    p_kw = np.array([0.0, 4000.0, 8000.0, 12000.0, 12000.0, 3000.0])  # 4 MW/s up, then a 9 MW drop
    assert swing_mw(p_kw, 1.0, 1.0) == pytest.approx(9.0)  # two samples: the drop
    assert swing_mw(p_kw, 1.0, 2.0) == pytest.approx(9.0)
    assert swing_mw(p_kw, 1.0, 3.0) == pytest.approx(12.0)
    assert swing_mw(p_kw, 1.0, 0.5) == 0.0  # a window shorter than a step holds one sample


def test_bad_series_raise():
    with pytest.raises(ValueError):
        ramp_rates(np.ones((2, 2)), 1.0)
    with pytest.raises(ValueError):
        peak_demand_kw(np.ones(10), 0.0)


def test_minute_ramps_by_hand_and_the_kpi_is_their_extreme():
    from twin.kpi.signal import minute_ramps_mw_min

    # 1 MW/s up for 120 s, then flat for 60 s, at 1 s steps: 60 s differences are 60 MW/min while the rise
    # fills the window, falling linearly to 0 as the window slides onto the flat part
    p_kw = np.r_[np.arange(121) * 1000.0, np.full(60, 120_000.0)]
    m = minute_ramps_mw_min(p_kw, 1.0)
    assert len(m) == len(p_kw) - 60
    np.testing.assert_allclose(m[:61], 60.0)
    np.testing.assert_allclose(m[61:121], 60.0 - np.arange(1, 61))
    r = ramp_rates(p_kw, 1.0)
    assert r["ramp_up_max_mw_min"] == pytest.approx(m.max()) and r["ramp_down_max_mw_min"] == 0.0
    # a series shorter than a minute holds no minute ramp
    np.testing.assert_array_equal(minute_ramps_mw_min(np.arange(30.0), 1.0), [0.0])

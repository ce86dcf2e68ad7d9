"""Workload model: exact means, consistency between time scales, failures, mitigations, swings."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from twin.kpi.signal import band_energy, swing_mw
from twin.schema.workload import InferenceJob, Job, Mitigations, TrainingJob
from twin.sim.workload import job_power_w, rate_limit

pytestmark = pytest.mark.unit

TDP_W, IDLE_W = 700.0, 70.0  # H100 SXM TDP; idle ~10% of TDP (assumed)
HOUR = np.arange(36_000) * 0.1  # one hour at 0.1 s


def run(jobs, time_s, mitigations=None, resolve=False, **kw):
    n = len(jobs)
    return job_power_w(jobs, time_s, np.full(n, TDP_W), np.full(n, IDLE_W), mitigations, resolve, **kw)


def steady(**kw) -> TrainingJob:
    """A training job already at full load at t=0 and never interrupted."""
    base = dict(name="llm", gpus=1000, start_s=-100.0, failure_rate_per_gpu_h=0.0)
    return TrainingJob(**(base | kw))


def test_resolved_mean_equals_duty_weighted_mean():
    # period 2.37 s does not divide the 0.1 s step: the mean must still come out right
    job = steady(iteration_s=2.37)
    out = run([job], HOUR, resolve=True)
    # checkpoints end at -100 + k*1800 s: [1640, 1700) and [3440, 3500) lie in the hour -> 120 s of 3600 s
    iteration_pu = 0.8 * 0.95 + 0.2 * 0.35  # 0.83
    expected_w = TDP_W * ((1 - 120 / 3600) * iteration_pu + 120 / 3600 * 0.25)  # 567.47 W
    assert out.p_gpu_w.mean() == pytest.approx(expected_w, rel=0.01)
    # and it really swings between the two phase levels
    assert out.p_gpu_w.max() == pytest.approx(0.95 * TDP_W, rel=0.01)
    assert out.p_gpu_w.min() == pytest.approx(0.25 * TDP_W, rel=0.01)


@pytest.mark.parametrize(
    "mit",
    [None, Mitigations(gpu_ramp_limit_pu_s=0.5, gpu_power_floor_pu=0.3), Mitigations(filler_load_pu=0.6)],
)
def test_hourly_mean_matches_resolved_hour(mit):
    job = steady()
    fine = run([job], HOUR, mit, resolve=True)
    coarse = run([job], np.arange(24) * 3600.0, mit, resolve=False)
    assert coarse.p_gpu_w[0, 0] == pytest.approx(fine.p_gpu_w.mean(), rel=0.02)
    # the envelope brackets the resolved waveform (up to the lag and step averaging, which only narrow it)
    assert coarse.p_gpu_min_w[0, 0] <= fine.p_gpu_w.min() + 1.0
    assert coarse.p_gpu_max_w[0, 0] >= fine.p_gpu_w.max() - 1.0


def test_ramp_limit_shifts_mean_as_hand_computed():
    # r = 0.5 pu/s cannot cover 0.95 - 0.35 = 0.6 pu in the 0.6 s comm phase: the wave sits at 0.95 and dips
    # 0.5*0.6 = 0.3 pu; mean = 0.95 - r*t_comm^2/period = 0.95 - 0.5*0.36/2 = 0.86 pu (no checkpoint here)
    job = steady(checkpoint_interval_s=1e7, checkpoint_duration_s=0.0, compute_fraction_pu=0.7)
    out = run([job], np.arange(3) * 3600.0, Mitigations(gpu_ramp_limit_pu_s=0.5))
    assert out.p_gpu_w[0, 0] == pytest.approx(0.86 * TDP_W, rel=1e-6)
    assert out.p_gpu_min_w[0, 0] == pytest.approx(0.65 * TDP_W, rel=1e-6)
    fine = run([job], HOUR, Mitigations(gpu_ramp_limit_pu_s=0.5), resolve=True)
    assert fine.p_gpu_w.mean() == pytest.approx(0.86 * TDP_W, rel=0.01)


def test_failure_count_matches_poisson_rate():
    gpus = 16_384
    job = TrainingJob(name="llama-like", gpus=gpus, start_s=0.0)
    hours = 8760
    out = run([job], np.arange(hours) * 3600.0)
    expected = 419 / (54 * 24 * 16_384) * gpus * hours  # 2,832 interruptions in a year
    n = int(out.n_failures[0])
    assert abs(n - expected) <= 3 * np.sqrt(expected)
    # lost time: each interruption idles the job for recovery_s plus half the 30 s restart ramp (overlaps rare)
    lost_h = (1 - out.active_pu[0]).sum() - 30 / 2 / 3600  # minus the start ramp
    expected_lost_h = n * (600 + 15) / 3600
    assert lost_h == pytest.approx(expected_lost_h, rel=0.08)
    assert lost_h < expected_lost_h  # overlapping failures can only merge downtime


def test_same_failures_seen_at_both_time_scales():
    # a 100k-GPU job fails about twice an hour; hour 5 resolved must average to the hourly value of hour 5
    job = TrainingJob(name="colossus", gpus=100_000, start_s=-100.0)
    coarse = run([job], np.arange(12) * 3600.0)
    fine = run([job], 5 * 3600.0 + HOUR, resolve=True)
    assert fine.n_failures[0] >= 1
    assert coarse.p_gpu_w[0, 5] == pytest.approx(fine.p_gpu_w.mean(), rel=0.02)
    assert fine.p_gpu_w.min() < 1.05 * IDLE_W  # the whole job drops to idle


def test_power_floor_lifts_troughs_and_kills_band_energy():
    job = steady(gpus=100_000)
    t = HOUR[:6000]  # 10 minutes
    bare = run([job], t, resolve=True)
    floored = run([job], t, Mitigations(gpu_power_floor_pu=0.9), resolve=True)
    assert floored.p_gpu_w.min() >= 0.9 * TDP_W - 0.01
    band = (0.1, 2.0)
    e_bare = band_energy(bare.p_gpu_w[0] * job.gpus / 1000.0, 0.1, (band,))[band]
    e_floor = band_energy(floored.p_gpu_w[0] * job.gpus / 1000.0, 0.1, (band,))[band]
    print(f"\n0.1-2 Hz energy, 100k GPUs: {e_bare:.1f} MW^2 bare, {e_floor:.2f} MW^2 with a 90% floor")
    assert e_bare > 100.0  # a 42 MW square wave: ~ (42 MW)^2 * 0.8 * 0.2 of variance, mostly in band
    assert e_floor < 0.1 * e_bare


def test_ramp_limiter_never_exceeds_limit():
    limit_pu_s = 0.2
    jobs = [steady(name=f"j{i}", seed=i) for i in range(3)] + [
        TrainingJob(name="fails", gpus=100_000, start_s=600.0, end_s=3000.0)
    ]
    out = run(jobs, HOUR, Mitigations(gpu_ramp_limit_pu_s=limit_pu_s), resolve=True)
    step_w = np.abs(np.diff(out.p_gpu_w.astype(np.float64), axis=1))
    limit_w = limit_pu_s * TDP_W * 0.1  # 14 W per 0.1 s step
    assert step_w.max() <= limit_w * (1 + 1e-4)
    assert step_w.max() >= 0.99 * limit_w  # the limiter is engaged, not idle


def test_rate_limit_by_hand():
    x = np.array([[0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    y = rate_limit(x, 0.4)
    np.testing.assert_allclose(y[0], [0.0, 0.4, 0.8, 1.0, 0.6, 0.2, 0.0], atol=1e-6)


def test_100k_gpu_job_swings_tens_of_mw():
    job = steady(gpus=100_000)
    out = run([job], HOUR[:600], resolve=True)  # one minute
    site_kw = out.p_gpu_w[0].astype(np.float64) * job.gpus / 1000.0
    swing = swing_mw(site_kw, 0.1, 2.0)
    print(f"\n100,000 H100 training job: swing {swing:.1f} MW within 2 s at 0.1 s steps")
    # hand: (0.95 - 0.35) * 700 W * 100,000 = 42 MW, a little less after the 50 ms lag and step averaging
    assert 35.0 < swing <= 42.0 + 1e-6


def test_start_and_end_ramps():
    job = TrainingJob(name="short", gpus=10, start_s=100.0, end_s=400.0, failure_rate_per_gpu_h=0.0)
    t = np.arange(5000) * 0.1
    out = run([job], t, resolve=True)
    p = out.p_gpu_w[0]
    assert np.all(p[t < 100] == pytest.approx(IDLE_W))
    assert np.all(p[t >= 400.5] == pytest.approx(IDLE_W, abs=1e-3))
    ramp = out.active_pu[0][(t >= 100) & (t < 130)]
    assert np.all(np.diff(ramp) > 0) and ramp[-1] == pytest.approx(1.0, abs=0.01)


def test_inference_daily_cycle_by_hand():
    job = InferenceJob(
        name="chat", gpus=100, p_mean_pu=0.5, daily_amplitude_pu=0.2, peak_hour=20.0, noise_pu=0.0
    )
    out = run([job], np.arange(48) * 3600.0, t0_local_h=0.0)
    p = out.p_gpu_w[0]
    assert p.mean() == pytest.approx(0.5 * TDP_W, rel=1e-5)
    # steps [19 h, 20 h) and [20 h, 21 h) straddle the peak: mean of cos over an hour = sin(pi/12)/(pi/12)
    peak_w = TDP_W * (0.5 + 0.2 * np.sin(np.pi / 12) / (np.pi / 12))
    assert p.max() == pytest.approx(peak_w, rel=1e-5)
    assert int(np.argmax(p[:24])) in (19, 20)
    # the local clock shifts the cycle
    shifted = run([job], np.arange(48) * 3600.0, t0_local_h=6.0).p_gpu_w[0]
    assert int(np.argmax(shifted[:24])) in (13, 14)


def test_inference_noise_has_asked_std_when_resolved():
    job = InferenceJob(name="chat", gpus=100, daily_amplitude_pu=0.0, noise_pu=0.05, noise_tau_s=1.0)
    out = run([job], np.arange(200_000) * 0.1, resolve=True)
    # step-averaged OU noise (tau 1 s, step 0.1 s) keeps ~98% of its std; the 50 ms lag removes a little more
    assert np.std(out.p_gpu_w[0]) / TDP_W == pytest.approx(0.05, rel=0.08)


def test_inference_noise_is_the_same_in_any_window():
    """A window of the scenario clock (a live clock runs consecutive windows) sees the whole run's noise,
    not the noise of the run's first hours again."""
    job = InferenceJob(name="chat", gpus=100, daily_amplitude_pu=0.0, noise_pu=0.05, noise_tau_s=60.0)
    t = np.arange(7200) * 1.0  # two hours at 1 s
    whole = run([job], t).p_gpu_w[0]
    second = run([job], t[3600:]).p_gpu_w[0]
    np.testing.assert_allclose(second, whole[3600:], rtol=1e-5)
    assert np.abs(whole[3600:] - whole[:3600]).max() > 0.02 * TDP_W  # the second hour is not the first again
    # at 0.1 s, resolved: a window starting mid-run joins the whole run too
    fine = run([job], HOUR[:12000], resolve=True).p_gpu_w[0]
    late = run([job], HOUR[6000:12000], resolve=True).p_gpu_w[0]
    np.testing.assert_allclose(late[100:], fine[6100:], rtol=1e-4)  # after the 50 ms GPU lag's own start


def test_envelope_brackets_mean_and_sees_idle_after_failures():
    job = TrainingJob(name="big", gpus=100_000, start_s=0.0)
    out = run([job], np.arange(200) * 3600.0)
    assert np.all(out.p_gpu_min_w <= out.p_gpu_w + 1e-3)
    assert np.all(out.p_gpu_w <= out.p_gpu_max_w + 1e-3)
    assert out.p_gpu_max_w.max() == pytest.approx(0.95 * TDP_W)
    assert out.p_gpu_min_w.min() == pytest.approx(IDLE_W)


def test_deterministic_and_independent_of_job_order():
    a, b = TrainingJob(name="a", gpus=50_000, seed=3), TrainingJob(name="b", gpus=50_000, seed=3)
    t = np.arange(2000) * 0.5
    ab = run([a, b], t, resolve=True).p_gpu_w
    ba = run([b, a], t, resolve=True).p_gpu_w
    np.testing.assert_array_equal(ab[0], ba[1])
    assert not np.array_equal(ab[0], ab[1])  # same seed, different names: different phase and failures


def test_schema_rejects_bad_input():
    with pytest.raises(ValidationError):
        TrainingJob(name="x", gpus=8, start_s=10.0, end_s=5.0)
    with pytest.raises(ValidationError):
        TrainingJob(name="x", gpus=8, unknown_field=1)
    with pytest.raises(ValidationError):
        Mitigations(gpu_power_floor_pu=1.2)
    with pytest.raises(ValidationError):
        InferenceJob(name="x", gpus=8, p_mean_pu=0.9, daily_amplitude_pu=0.2)
    job = TypeAdapter(Job).validate_python({"kind": "inference", "name": "x", "gpus": 8})
    assert isinstance(job, InferenceJob)
    with pytest.raises(ValidationError):
        job.gpus = 9  # frozen


def test_floor_holds_through_failures():
    job = TrainingJob(name="big", gpus=100_000, start_s=-100.0)  # fails about twice an hour
    mit = Mitigations(gpu_power_floor_pu=0.9)
    coarse = run([job], np.arange(24) * 3600.0, mit)
    assert coarse.active_pu.min() < 0.9  # failures happened
    assert coarse.p_gpu_min_w.min() >= 0.9 * TDP_W - 0.01
    worst_h = int(np.argmin(coarse.active_pu[0]))
    fine = run([job], worst_h * 3600.0 + HOUR, mit, resolve=True)
    assert fine.n_failures[0] >= 1 and fine.p_gpu_w.min() >= 0.9 * TDP_W - 0.01


def test_downtime_of_close_failures_by_hand():
    from twin.sim.workload import _activity

    job = TrainingJob(name="x", gpus=8, start_s=-100.0)  # recovery 600 s, ramp 30 s
    edges = np.arange(3601.0)
    run_pu, outside = _activity(job, np.array([1000.0, 1610.0]), edges, np.diff(edges))
    # first: 600 s down, then its ramp is cut 10 s in by the second failure: 10 - 10^2/(2*30) = 8.33 s lost
    # second: 600 s down + a full ramp, 30/2 = 15 s lost -> 1223.33 s
    assert (1 - run_pu).sum() == pytest.approx(600 + 10 - 100 / 60 + 600 + 15, abs=1e-6)
    assert outside.sum() == 0.0
    assert run_pu[1000:1600].max() == 0.0 and run_pu[2300:].min() == 1.0


def test_bad_arguments_raise_input_error():
    from twin.errors import InputError

    job = steady()
    with pytest.raises(InputError, match="uniform"):
        run([job], np.array([0.0, 0.1, 0.3]), resolve=True)
    with pytest.raises(InputError, match="increasing"):
        run([job], np.array([0.0, 2.0, 1.0]))
    with pytest.raises(InputError, match="one value per job"):
        job_power_w([job], np.arange(3.0), np.full(2, TDP_W), np.full(2, IDLE_W))

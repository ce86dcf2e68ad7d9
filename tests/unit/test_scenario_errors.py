"""Bad scenarios: each gives a precise InputError (file, key, expectation) and `twin simulate` exits 1 leaving
no run directory behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import twin
from twin.errors import InputError

pytestmark = pytest.mark.unit
EPW = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "weather" / "USA_TN_Memphis.Intl.AP.723340_TMY3.epw"


def _write(tmp_path, body: str, name="bad.yaml") -> Path:
    p = tmp_path / name
    p.write_text(body)
    return p


CASES = {
    "unknown_site": ("site: nowhere-site\nhours: 24\n", "site", "unknown site"),
    "step_gt_span": ("site: tiny\nhours: 1\nstep: 2h\n", "step", "larger than the span"),
    "job_too_big": ("site: tiny\nhours: 1\nworkload:\n  jobs:\n    - {name: big, kind: training, gpus: 1000}\n",
                    "workload.jobs", "has 384"),
    "negative_rate": ("site: tiny\nhours: 1\nworkload:\n  jobs:\n    - {name: j, kind: training, gpus: 64, "
                      "failure_rate_per_gpu_h: -0.1}\n", "workload.jobs[0].failure_rate_per_gpu_h", "greater than or equal to 0"),
    "negative_ramp_limit": ("site: tiny\nhours: 1\nlimits: {grid_ramp_max_kw_min: -5}\n", "limits.grid_ramp_max_kw_min",
                            "greater than 0"),
    "unknown_component": ("site: tiny\nhours: 4\nevents:\n  - {kind: outage, component: nope, start_h: 1, hours: 1}\n",
                          "events[0].component", "unknown component"),
    "unit_in_name": ("site: tiny\nhours: 1\nlimits: {grid_import_max: 100}\n", "limits.grid_import_max", "did you mean"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_precise_messages(tmp_path, case):
    body, key, words = CASES[case]
    p = _write(tmp_path, body)
    with pytest.raises(InputError) as exc:
        twin.load_scenario(p)
    msg = str(exc.value)
    assert str(p) in msg and words in msg, msg
    assert any(pr.key.startswith(key) for pr in exc.value.problems), [pr.key for pr in exc.value.problems]


def test_truncated_epw(tmp_path):
    lines = EPW.read_text(encoding="latin-1").splitlines()
    epw = tmp_path / "short.epw"
    epw.write_text("\n".join(lines[:8 + 1000]) + "\n")
    p = _write(tmp_path, "site: tiny\nhours: 1\nweather: short.epw\n")  # relative to the scenario file
    with pytest.raises(InputError) as exc:
        twin.load_scenario(p)
    assert "short.epw" in str(exc.value) and [pr.key for pr in exc.value.problems] == ["weather"]


def test_not_an_epw(tmp_path):
    (tmp_path / "w.epw").write_text("hello, world\n")
    p = _write(tmp_path, "site: tiny\nhours: 1\nweather: w.epw\n")
    with pytest.raises(InputError) as exc:
        twin.load_scenario(p)
    # names the scenario, its key, the weather file and what an EPW must hold
    assert [(pr.file, pr.key) for pr in exc.value.problems] == [(str(p), "weather")]
    assert "w.epw" in str(exc.value) and "8 EPW header records" in str(exc.value)


@pytest.mark.parametrize("case", ["unknown_site", "step_gt_span", "job_too_big", "negative_rate"])
def test_cli_exit_1_and_no_run_left(tmp_path, case):
    p = _write(tmp_path, CASES[case][0])
    runs = tmp_path / "runs"
    r = subprocess.run([sys.executable, "-c", "from twin.cli import main; main()", "simulate", str(p)],
                       capture_output=True, text=True, env={**__import__("os").environ, "TWIN_RUNS_DIR": str(runs)})
    assert r.returncode == 1, r.stderr
    err = " ".join(r.stderr.split())  # rich wraps long lines
    assert CASES[case][2] in err and "Traceback" not in err
    assert not runs.exists() or not any(runs.iterdir())

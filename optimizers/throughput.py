"""Throughput-vs-power curves of GPU jobs under a power cap (data/throughput_curves.yaml).

A curve maps x = cap / the job's uncapped per-GPU power to y = throughput / uncapped throughput. Curves
are checked to be increasing and concave, so the optimiser can use their hypograph: y <= a_k x + b_k for
every segment k, which is exact at the optimum when throughput is maximised (no binaries needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from twin.errors import InputError
from twin.paths import data_dir
from twin.yamlio import read_yaml


@dataclass(frozen=True)
class ThroughputCurve:
    name: str
    power_pu: np.ndarray
    throughput_pu: np.ndarray
    gpu_type: str | None = None
    workload: str = "training"
    source: str = ""
    confidence: str = "assumed"

    def __post_init__(self):
        check_curve(self.name, self.power_pu, self.throughput_pu, "<curve>")

    def __call__(self, x) -> np.ndarray:
        """Throughput at cap x (per unit), linear between points, flat at 1 above the last."""
        return np.interp(np.asarray(x, float), self.power_pu, self.throughput_pu)

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """Slopes a_k and intercepts b_k of each linear piece: y = a_k x + b_k."""
        x, y = self.power_pu, self.throughput_pu
        a = np.diff(y) / np.diff(x)
        return a, y[:-1] - a * x[:-1]

    @property
    def x_min(self) -> float:
        return float(self.power_pu[0])


def check_curve(name: str, x, y, file: str) -> None:
    x, y = np.asarray(x, float), np.asarray(y, float)
    key = f"curves.{name}"
    if x.shape != y.shape or x.size < 2:
        raise InputError.one(file, key, "power_pu and throughput_pu need the same length, at least 2 points")
    if np.any(np.diff(x) <= 0) or x[0] <= 0 or x[-1] > 1 + 1e-12:
        raise InputError.one(file, f"{key}.power_pu", "expected strictly increasing values in (0, 1]")
    if np.any(np.diff(y) < -1e-12) or y[0] < 0 or y[-1] > 1 + 1e-12:
        raise InputError.one(file, f"{key}.throughput_pu", "expected non-decreasing values in [0, 1]")
    slopes = np.diff(y) / np.diff(x)
    if np.any(np.diff(slopes) > 1e-9):
        raise InputError.one(file, f"{key}.throughput_pu",
                             f"the curve must be concave (slopes {np.round(slopes, 3).tolist()} must not increase)")


def linear_curve(name: str, slope_pu: float, x_min: float = 0.3) -> ThroughputCurve:
    """A straight curve through (1, 1) with the given slope: y = 1 - slope (1 - x). For tests and what-ifs."""
    x = np.array([x_min, 1.0])
    return ThroughputCurve(name, x, 1.0 - slope_pu * (1.0 - x), source="linear (test)", confidence="assumed")


@cache
def _load(path: str) -> dict[str, ThroughputCurve]:
    raw = read_yaml(Path(path))
    curves = raw.get("curves") if isinstance(raw, dict) else None
    if not isinstance(curves, dict) or not curves:
        raise InputError.one(path, "curves", "expected a mapping of curve name -> curve")
    out = {}
    for name, c in curves.items():
        for k in ("power_pu", "throughput_pu", "source"):
            if k not in c:
                raise InputError.one(path, f"curves.{name}.{k}", "missing")
        check_curve(name, c["power_pu"], c["throughput_pu"], path)
        out[name] = ThroughputCurve(name, np.asarray(c["power_pu"], float), np.asarray(c["throughput_pu"], float),
                                    c.get("gpu_type"), c.get("workload", "training"), c["source"],
                                    c.get("confidence", "assumed"))
    return out


def load_curves(path: str | Path | None = None) -> dict[str, ThroughputCurve]:
    """All curves of data/throughput_curves.yaml (or another file), validated."""
    return dict(_load(str(path or data_dir() / "throughput_curves.yaml")))


def curve_for(gpu_type: str | None, workload: str = "training", curves: dict | None = None) -> ThroughputCurve:
    """The curve of a GPU type and workload kind, else the default for the workload, else training-default."""
    curves = curves or load_curves()
    for c in curves.values():
        if c.gpu_type == gpu_type and c.workload == workload:
            return c
    for c in curves.values():
        if c.gpu_type is None and c.workload == workload:
            return c
    return curves["training-default"]

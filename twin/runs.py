"""Run store: runs/<id>/ with the resolved scenario (scenario.yaml), the Dataset (result.nc, netCDF via
h5netcdf, or result.zarr when h5py is not installed) and summary.json. Written into a temporary folder beside the store and renamed, so a failed run
leaves nothing. Base folder: $TWIN_RUNS_DIR, else ./runs."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from twin.errors import InputError


def runs_dir() -> Path:
    return Path(os.environ.get("TWIN_RUNS_DIR", "runs"))


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def new_run_id(name: str = "run") -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in name)[:40]
    return f"{stamp}-{safe}-{uuid.uuid4().hex[:6]}"


def save_run(ds: xr.Dataset, summary: dict | None = None, run_id: str | None = None, base: Path | None = None) -> str:
    """Write the run atomically; returns its id."""
    base = Path(base) if base is not None else runs_dir()
    base.mkdir(parents=True, exist_ok=True)
    sc = json.loads(ds.attrs.get("scenario", "{}"))
    run_id = run_id or new_run_id(sc.get("name", "run"))
    final = base / run_id
    if final.exists():
        raise InputError.one(str(final), "", "run directory exists already")
    tmp = Path(tempfile.mkdtemp(prefix=f".{run_id}.", dir=base))
    try:
        (tmp / "scenario.yaml").write_text(yaml.safe_dump(sc, sort_keys=False))
        if summary is None:
            import twin.accessor  # noqa: F401

            summary = ds.twin.kpis()
        meta = {"id": run_id, "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
                "site": ds.attrs.get("site"), "scenario": sc.get("name"), "step_s": ds.attrs.get("step_s"),
                "hours": _span_h(ds), "twin_version": ds.attrs.get("twin_version"), "kpis": _clean(summary)}
        (tmp / "summary.json").write_text(json.dumps(meta, indent=2))
        _write(ds, tmp)
        os.chmod(tmp, 0o755)  # mkdtemp makes it private (0700); a stored run is read by the dashboard and others
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return run_id


def _span_h(ds: xr.Dataset) -> float | None:
    """Hours the Dataset covers (a window of a scenario covers less than the scenario's `hours`)."""
    step_s = ds.attrs.get("step_s")
    return float(ds.sizes["time"] * step_s / 3600.0) if step_s is not None and "time" in ds.sizes else None


def _h5_available() -> bool:
    try:
        import h5py  # noqa: F401
    except ImportError:
        return False
    return True


def _write(ds: xr.Dataset, folder: Path) -> None:
    """netCDF-4 through h5netcdf when h5py is installed; otherwise Zarr (format 2), which xarray reads the same."""
    if _h5_available():
        ds.to_netcdf(folder / "result.nc", engine="h5netcdf")
    else:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.to_zarr(folder / "result.zarr", mode="w-", zarr_format=2, consolidated=True)


def list_runs(base: Path | None = None) -> list[dict]:
    """Summaries of complete runs, newest first."""
    base = Path(base) if base is not None else runs_dir()
    if not base.is_dir():
        return []
    out = []
    for d in base.iterdir():
        f = d / "summary.json"
        if d.is_dir() and not d.name.startswith(".") and f.exists():
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, json.JSONDecodeError):
                continue
    return sorted(out, key=lambda m: m.get("created_utc", ""), reverse=True)


def run_path(run_id: str, base: Path | None = None) -> Path:
    base = Path(base) if base is not None else runs_dir()
    p = base / run_id
    if not (p / "summary.json").exists():
        known = [m["id"] for m in list_runs(base)][:5]
        raise InputError.one(str(base), run_id, f"no such run; recent runs: {', '.join(known) or '(none)'}")
    return p


def open_run(run_id: str, base: Path | None = None) -> xr.Dataset:
    """The stored Dataset (loaded into memory; the file is closed)."""
    import twin.accessor  # noqa: F401

    p = run_path(run_id, base)
    if (p / "result.nc").exists():
        with xr.open_dataset(p / "result.nc", engine="h5netcdf") as ds:
            return ds.load()
    with xr.open_zarr(p / "result.zarr", consolidated=True) as ds:
        return ds.load()


def run_summary(run_id: str, base: Path | None = None) -> dict:
    return json.loads((run_path(run_id, base) / "summary.json").read_text())

"""Scenario: what to run on a site (span and step, workload, weather, events, limits, setpoints).

Validated like sites: pydantic models, frozen, unknown keys rejected, units in every numeric name.
`twin.scenario.load_scenario` (re-exported as `twin.load_scenario`) reads a YAML file into a `Scenario`
and checks it against its site (job sizes, component ids); `Scenario.resolved()` is the JSON-able form
stored with every result.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, PositiveFloat, PositiveInt, field_validator, model_validator

from twin.schema.base import Frozen
from twin.schema.workload import Job, Mitigations, TrainingJob

_STEP_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|sec|min|m|h|hr|d)\s*$")
_STEP_UNITS_S = {"ms": 1e-3, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}


def parse_step_s(step: str | float | int) -> float:
    """'1h' -> 3600, '15min' -> 900, '1s' -> 1, '0.1s' -> 0.1; a bare number is seconds."""
    if isinstance(step, int | float) and not isinstance(step, bool):
        value = float(step)
    else:
        m = _STEP_RE.match(str(step))
        if not m:
            raise ValueError(f"step {step!r}: expected a number and a unit, e.g. '1h', '15min', '1s', '0.1s'")
        value = float(m.group(1)) * _STEP_UNITS_S[m.group(2)]
    if not value > 0:
        raise ValueError(f"step {step!r} must be positive")
    return value


# --------------------------------------------------------------------------- events


class _Event(Frozen):
    start_h: float = Field(0.0, ge=0, description="Start, hours from the scenario start")
    hours: PositiveFloat = Field(..., description="Duration, h")

    @property
    def end_h(self) -> float:
        return self.start_h + self.hours


class OutageEvent(_Event):
    """A component out of service: all its units (units=None) or `units` of its parallel units."""

    kind: Literal["outage"] = "outage"
    component: str = Field(..., min_length=1, description="Equipment id (site component or expanded hall unit)")
    units: PositiveInt | None = Field(None, description="Parallel units lost (None = the whole component)")


class HeatWaveEvent(_Event):
    kind: Literal["heat_wave"] = "heat_wave"
    delta_t_k: float = Field(..., description="Dry-bulb rise, K")
    hold: Literal["t_dew_c", "rh_pct"] = Field("t_dew_c", description="Humidity quantity held constant")


class CurtailmentEvent(_Event):
    kind: Literal["curtailment"] = "curtailment"
    grid_import_max_kw: float = Field(..., ge=0, description="Grid import limit during the window, kW")


class JobStartEvent(Frozen):
    kind: Literal["job_start"] = "job_start"
    job: str = Field(..., min_length=1, description="Job name")
    at_h: float = Field(..., ge=0, description="Start time, hours from the scenario start")


class JobEndEvent(Frozen):
    kind: Literal["job_end"] = "job_end"
    job: str = Field(..., min_length=1, description="Job name")
    at_h: float = Field(..., gt=0, description="End time, hours from the scenario start")


Event = Annotated[
    OutageEvent | HeatWaveEvent | CurtailmentEvent | JobStartEvent | JobEndEvent, Field(discriminator="kind")
]
EVENT_TAGS = frozenset({"outage", "heat_wave", "curtailment", "job_start", "job_end", "training", "inference"})


# --------------------------------------------------------------------------- the rest


class Workload(Frozen):
    """Explicit jobs, or `fill_pu`: one training job per GPU type holding that share of the site's GPUs."""

    jobs: tuple[Job, ...] = Field((), description="Jobs (training / inference), placed by the default fill")
    fill_pu: float | None = Field(None, gt=0, le=1, description="Share of every GPU type put in one training job")
    fill_job: dict = Field(
        default_factory=dict,
        description="TrainingJob fields (other than name/gpus/gpu_type) for the fill job, e.g. iteration_s",
    )

    @model_validator(mode="after")
    def _names(self):
        names = [j.name for j in self.jobs]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"job names must be unique, repeated: {', '.join(dup)}")
        bad = set(self.fill_job) & {"name", "gpus", "gpu_type"}
        if bad:
            raise ValueError(f"fill_job may not set {', '.join(sorted(bad))} (the fill decides them)")
        if self.fill_job:
            TrainingJob(name="fill", gpus=1, **self.fill_job)  # validates the fields now, not at run time
        return self


class Limits(Frozen):
    grid_import_max_kw: float | None = Field(None, ge=0, description="Grid import cap (None = the feed's rating)")
    grid_ramp_max_kw_min: float | None = Field(None, gt=0, description="Utility ramp-rate limit on grid import")
    turbines_max: int | None = Field(None, ge=0, description="Most gas-turbine units allowed online")
    co2_max_t: float | None = Field(None, ge=0, description="Emissions cap over the horizon (used by optimisers)")
    nox_max_t: float | None = Field(None, ge=0, description="Turbine NOx cap over the horizon, t (an air permit; used by optimisers)")
    load_reduction_kw: float | None = Field(
        None, ge=0, description="Grid import the utility may ask the site to shed within 30 minutes, held ready at every step (used by optimisers)"
    )


class Setpoints(Frozen):
    t_supply_c: float | dict[str, float] | None = Field(
        None, description="Facility water supply temperature: one value for every loop, or per loop id"
    )
    cycles_of_concentration: float | None = Field(None, gt=1, description="Cooling-tower blowdown setting")


class Dispatch(Frozen):
    """Rule-based dispatch settings (the optimal dispatch lives in optimizers/dispatch.py)."""

    battery_smoothing_tau_s: PositiveFloat = Field(
        60.0, description="With battery smoothing, grid import follows the demand through a first-order lag of this time constant"
    )
    battery_soc_target_pu: float = Field(0.8, ge=0, le=1, description="SOC the battery recharges toward when the grid has room")
    turbine_commit_window_s: PositiveFloat = Field(900.0, description="Turbines are committed on the demand averaged over this window")


class InitialState(Frozen):
    battery_soc_pu: float | None = Field(None, ge=0, le=1, description="Battery SOC at the start (None = the target)")
    turbines_online: int | None = Field(None, ge=0, description="Gas-turbine units online at the start")


class Solver(Frozen):
    time_limit_s: PositiveFloat = Field(60.0, description="Optimiser time limit")
    rel_gap: float = Field(0.01, ge=0, le=1, description="Optimiser relative MIP gap")


class Scenario(Frozen):
    name: str = Field("scenario", min_length=1)
    description: str = ""
    site: str = Field(..., min_length=1, description="Site name in sites/ or a path to a site YAML")
    start: datetime = Field(datetime(2025, 1, 1, 0, 0), description="Local standard time of the first step")
    hours: PositiveFloat = Field(..., description="Simulated span, h")
    step: str = Field("1h", description="Step, e.g. '1h', '15min', '1s', '0.1s'")
    workload: Workload = Field(default_factory=lambda: Workload(fill_pu=1.0))
    mitigations: Mitigations = Field(default_factory=Mitigations)
    weather: str | None = Field(None, description="None = Memphis typical year; '<climate>-typical' or a .epw path")
    events: tuple[Event, ...] = ()
    limits: Limits = Field(default_factory=Limits)
    setpoints: Setpoints = Field(default_factory=Setpoints)
    dispatch: Dispatch = Field(default_factory=Dispatch)
    initial_state: InitialState = Field(default_factory=InitialState)
    seed: int = Field(0, description="Mixed into every job's seed")
    solver: Solver = Field(default_factory=Solver)
    base_dir: str | None = Field(None, description="Folder relative paths are resolved against (set by load_scenario)")

    @field_validator("step", mode="before")
    @classmethod
    def _step(cls, v):
        if isinstance(v, int | float) and not isinstance(v, bool):
            v = f"{v}s"
        parse_step_s(v)
        return str(v).strip()

    @model_validator(mode="after")
    def _span(self):
        if self.step_s > self.hours * 3600 + 1e-9:
            raise ValueError(f"step {self.step} ({self.step_s:g} s) is larger than the span of {self.hours:g} h")
        n = self.hours * 3600 / self.step_s
        if abs(n - round(n)) > 1e-6 * max(1.0, n):
            raise ValueError(f"the span of {self.hours:g} h is not a whole number of {self.step} steps")
        return self

    @property
    def step_s(self) -> float:
        return parse_step_s(self.step)

    @property
    def n_steps(self) -> int:
        return int(round(self.hours * 3600 / self.step_s))

    def resolved(self) -> dict:
        """JSON-able dict of every field, defaults filled in (stored in the result's attrs)."""
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- loading


def scenario_from_dict(raw, file: str = "<scenario>", base_dir: str | None = None) -> Scenario:
    """Validate a mapping into a Scenario; problems name `file` and the key path."""
    from pydantic import ValidationError

    from twin.errors import InputError
    from twin.yamlio import problems_from_validation

    if not isinstance(raw, dict):
        raise InputError.one(file, "", f"expected a mapping at the top of the scenario, got {type(raw).__name__}")
    data = dict(raw)
    try:  # say which key is wrong when the step does not fit the span (pydantic would name the whole file)
        hours, step_s = float(data["hours"]), parse_step_s(data.get("step", "1h"))
    except (KeyError, TypeError, ValueError):
        hours, step_s = None, None
    if hours is not None and hours > 0 and hours * 3600.0 < step_s - 1e-9:
        raise InputError.one(file, "step", f"step {data.get('step', '1h')!r} ({step_s:g} s) is larger than the span of "
                             f"{hours:g} h; expected a step of at most the span")
    if base_dir is not None and "base_dir" not in data:
        data["base_dir"] = base_dir
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        models_at = {"": Scenario, "workload": Workload, "limits": Limits, "setpoints": Setpoints,
                     "mitigations": Mitigations, "dispatch": Dispatch, "initial_state": InitialState,
                     "solver": Solver}
        raise InputError(problems_from_validation(file, exc, EVENT_TAGS, models_at)) from None


def load_scenario(path, check: bool = True) -> Scenario:
    """Read a scenario YAML; with `check`, also its site, job sizes, event targets and weather file."""
    from pathlib import Path

    from twin.yamlio import read_yaml

    p = Path(path)
    raw = read_yaml(p)
    sc = scenario_from_dict(raw, str(p), str(p.resolve().parent))
    if check:
        check_scenario(sc, str(p))
    return sc


def check_scenario(sc: Scenario, file: str = "<scenario>") -> None:
    """Checks that need the site: it exists, jobs fit on it, events name real components / jobs, weather reads."""
    from twin.errors import InputError, Problem
    from twin.sim.engine import site_layout
    from twin.sim.placement_default import gpu_capacity, resolve_jobs

    try:
        layout = site_layout(sc.site, sc.base_dir)
    except InputError as exc:
        raise InputError([Problem(file, "site", f"{sc.site!r}: {p.message}") for p in exc.problems]) from None
    problems: list[Problem] = []
    try:
        jobs = resolve_jobs(sc, layout)
    except InputError as exc:
        jobs = []
        problems += [Problem(file, p.key, p.message) for p in exc.problems]
    cap = gpu_capacity(layout)
    need: dict[str, int] = {}
    for j in jobs:
        need[j.gpu_type] = need.get(j.gpu_type, 0) + j.gpus
    for gtype, n in need.items():
        if n > cap.get(gtype, 0):
            problems.append(Problem(file, "workload.jobs", f"jobs need {n:,} {gtype} GPUs but site {layout.site.name!r} "
                                    f"has {cap.get(gtype, 0):,}; expected at most that many"))
    names = {j.name for j in jobs}
    for i, ev in enumerate(sc.events):
        if ev.kind == "outage":
            if ev.component not in layout.index:
                problems.append(Problem(file, f"events[{i}].component", f"unknown component {ev.component!r} in site "
                                        f"{layout.site.name!r}; expected an equipment id such as {layout.equip.ids[0]!r}"))
            elif ev.units is not None and ev.units > layout.equip.model[layout.index[ev.component]].count:
                m = layout.equip.model[layout.index[ev.component]]
                problems.append(Problem(file, f"events[{i}].units", f"{ev.units} units out but {ev.component} has "
                                        f"{m.count}; expected at most {m.count} (or no units: the whole component)"))
        if ev.kind in ("job_start", "job_end") and ev.job not in names:
            problems.append(Problem(file, f"events[{i}].job", f"unknown job {ev.job!r}; expected one of {sorted(names)}"))
        if getattr(ev, "start_h", 0.0) >= sc.hours or getattr(ev, "at_h", 0.0) > sc.hours:
            at_h = getattr(ev, "start_h", None)
            at_h = ev.at_h if at_h is None else at_h
            problems.append(Problem(file, f"events[{i}]", f"{ev.kind} at {at_h:g} h starts after the end of the "
                                    f"{sc.hours:g} h span; expected a time within the span"))
    if isinstance(sc.setpoints.t_supply_c, dict):
        for lp in sc.setpoints.t_supply_c:
            if lp not in layout.index or layout.equip.kind[layout.index[lp]] != "facility_loop":
                loops = [e for e, k in zip(layout.equip.ids, layout.equip.kind, strict=True) if k == "facility_loop"]
                problems.append(Problem(file, f"setpoints.t_supply_c.{lp}", f"{lp!r} is not a facility loop of site "
                                        f"{layout.site.name!r}; expected one of: {', '.join(loops)}"))
    if problems:
        raise InputError(problems)
    from twin.weather import load_weather

    try:
        load_weather(sc.weather, sc.base_dir, file=file)
    except InputError as exc:
        raise InputError([p if p.file == file else Problem(file, "weather", str(p)) for p in exc.problems]) from None

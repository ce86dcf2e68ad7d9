"""Server-side time of the dashboard: each page's first render and the live floor heatmap update.

    python benchmarks/bench_dashboard.py [--site colossus-1] [--repeat 20]

Requests go through the Flask test client to Dash's own callback endpoint, so each figure includes routing,
the callback, the engine state lookup and JSON serialisation (not the network or the browser). "First
render" of a page = the page-container callback that runs the page's `layout()` plus every callback the
browser fires when the page appears. "Floor live update" = the callback the 1 s tick fires on the floor page
(a dash.Patch of every hall heatmap). Targets: first render <= 2 s, floor live update <= 200 ms.

It also times the floor update for a site ten times the size of Colossus 1 (hall template repeated to
10x the racks, simulated by the engine) with the same view functions the callback uses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboards.app import context_of, create_app  # noqa: E402


class Caller:
    """Posts callback requests the way dash-renderer does."""

    def __init__(self, app):
        self.client = app.server.test_client()
        self.client.get("/")
        self.deps = {d["output"]: d for d in self.client.get("/_dash-dependencies").get_json()}

    def key(self, *parts: str) -> str:
        hits = [k for k in self.deps if all(p in k for p in parts)]
        if len(hits) != 1:
            raise KeyError(f"{parts}: {hits}")
        return hits[0]

    def call(self, key: str, values: dict, changed: list[str] = (), expand: dict | None = None) -> tuple[float, dict]:
        """values: "id.prop" -> value (pattern ids: a list of (id, value) pairs); expand: pattern -> ids."""
        d = self.deps[key]
        expand = expand or {}

        def out_of(part: str):
            id_str, prop = part.rsplit(".", 1)
            if id_str.startswith("{"):
                return [{"id": i, "property": prop} for i in expand[id_str]]
            return {"id": id_str, "property": prop}

        parts = key[2:-2].split("...") if key.startswith("..") else [key]
        outputs = [out_of(p) for p in parts]

        def arg(spec):
            name = f"{spec['id']}.{spec['property']}"
            if spec["id"].startswith("{"):
                return [{"id": i, "property": spec["property"], "value": v} for i, v in values.get(name, [])]
            return {"id": spec["id"], "property": spec["property"], "value": values.get(name)}

        body = {"output": key, "outputs": outputs if len(outputs) > 1 or key.startswith("..") else outputs[0],
                "inputs": [arg(i) for i in d["inputs"]], "state": [arg(s) for s in d["state"]],
                "changedPropIds": list(changed)}
        t = time.perf_counter()
        r = self.client.post("/_dash-update-component", data=json.dumps(body), content_type="application/json")
        dt = time.perf_counter() - t
        if r.status_code not in (200, 204):
            raise RuntimeError(f"{key}: HTTP {r.status_code}: {r.get_data(as_text=True)[:500]}")
        return dt, (r.get_json() if r.status_code == 200 else {})


def first_render(caller: Caller, ctx, path: str) -> float:
    total, resp = caller.call(caller.key("_pages_content.children"), {"_pages_location.pathname": path,
                                                                       "_pages_location.search": ""})
    halls = [{"type": "floor-hall", "hall": h.hall_id} for h in ctx.floor.halls]
    pattern = '{"hall":["ALL"],"type":"floor-hall"}'
    tick = {"twin-tick.n_intervals": 0}
    first = {
        "/": [(caller.key("ov-kpis.children"), tick), (caller.key("ov-swing.figure"), {**tick, "ov-swing.figure": None})],
        "/topology": [
            (caller.key("topo-graph-view.elements"), {**tick, "topo-graph.value": "power",
                                                      "topo-hall.value": ctx.layout.hall_ids[0], "topo-source.value": "live"}),
            (caller.key("topo-graph-view.layout"), {"topo-graph.value": "power", "topo-hall.value": ctx.layout.hall_ids[0]}),
            (caller.key("topo-selected.data"), {"topo-graph.value": "power"}),
            (caller.key("topo-details.children"), {**tick, "topo-graph.value": "power", "topo-source.value": "live"}),
        ],
        "/floor": [(caller.key("floor-summary.children"), {**tick, "floor-metric.value": "power"}),
                   (caller.key("floor-details.children"), {**tick, "floor-metric.value": "power"})],
        "/whatif": [],
        "/runs": [(caller.key("runs-table.children"), {"runs-poll.n_intervals": 0}), (caller.key("runs-details.children"), {})],
    }[path]
    for key, values in first:
        dt, _ = caller.call(key, values, expand={pattern: halls})
        total += dt
    dt, _ = caller.call(caller.key("shell-clock.children"), tick)
    return total + dt


def floor_tick(caller: Caller, ctx, n: int, metric: str = "power") -> float:
    halls = [{"type": "floor-hall", "hall": h.hall_id} for h in ctx.floor.halls]
    pattern = '{"hall":["ALL"],"type":"floor-hall"}'
    dt, _ = caller.call(caller.key("floor-summary.children"), {"twin-tick.n_intervals": n, "floor-metric.value": metric},
                        changed=["twin-tick.n_intervals"], expand={pattern: halls})
    return dt


def ten_x_floor(repeat: int) -> tuple[int, float, float] | None:
    """Floor update time for Colossus 1's halls repeated to 10x the racks, with engine rack power."""
    from types import SimpleNamespace

    from dashboards.clock import Snapshot
    from dashboards.floorgrid import build_floor
    from dashboards.views import floor_patches, floor_summary
    from twin import simulate
    from twin.catalog import load_catalog
    from twin.layout import expand
    from twin.schema.scenario import Scenario
    from twin.site import parse_site, site_path
    from twin.yamlio import read_yaml

    raw = read_yaml(site_path("colossus-1"))
    raw["halls"][0]["count"] = 39  # 39 + 1 halls of ~455 racks: 18,194 racks
    raw["halls"][1]["index_start"] = 40
    comps = raw["components"]
    by_id = {c["id"]: c for c in comps}
    for n in range(5, 41):  # a switchgear line-up and a facility loop per added hall, as for halls 1-4
        comps.append({**by_id["swgr-1"], "id": f"swgr-{n}"})
        comps.append({**by_id["fwl-1"], "id": f"fwl-{n}"})
    site = parse_site(raw, "colossus-1 x10 (benchmark)", load_catalog())
    layout = expand(site)
    ds = simulate(layout, Scenario(name="bench", site="colossus-1", hours=1 / 6, step="60s"))
    p = ds.twin.rack_series().isel(time=-1).values
    t = ds["t_cdu_supply_c"].isel({ds["t_cdu_supply_c"].dims[0]: -1}).values if "t_cdu_supply_c" in ds else None
    ctx = SimpleNamespace(layout=layout, floor=build_floor(layout))
    snap = Snapshot(0, 0.0, ds["time"].values[-1].astype("datetime64[s]").item(), 60.0, "live", "running",
                    {"p_it_kw": 1.0}, {}, p, t)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        patches = floor_patches(ctx, "power", snap)
        floor_summary(ctx, "power", snap)
        json.dumps([pt.to_plotly_json() for pt in patches])
        times.append(time.perf_counter() - t0)
    return len(layout.racks), statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--site", default="colossus-1")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--no-10x", action="store_true", help="skip the ten-times site")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as runs:
        t = time.perf_counter()
        app = create_app(args.site, speed=60, runs_dir=runs, start_clock=False)
        rows.append(("app start (site load, views, no engine)", time.perf_counter() - t, None, None))
        ctx = context_of(app)
        t = time.perf_counter()
        ctx.clock.step_once()
        rows.append((f"engine: first live window ({ctx.clock.window_s:g} s twin at {ctx.clock.step_s:g} s)",
                     time.perf_counter() - t, None, None))
        caller = Caller(app)
        for path in ("/", "/topology", "/floor", "/whatif", "/runs"):
            runs_t = [first_render(caller, ctx, path) for _ in range(max(3, args.repeat // 4))]
            rows.append((f"first render {path}", statistics.median(runs_t), max(runs_t), 2.0))
        ticks = [floor_tick(caller, ctx, n) for n in range(1, args.repeat + 1)]
        rows.append((f"floor live update ({len(ctx.layout.racks):,} racks)", statistics.median(ticks), max(ticks), 0.2))
        ticks = [floor_tick(caller, ctx, n, "t_cdu") for n in range(1, args.repeat + 1)]
        rows.append(("floor live update, CDU supply temperature", statistics.median(ticks), max(ticks), 0.2))
        # the other live callbacks of each tick, for reference (no target in the issue)
        for _ in range(6):  # ~1 h of twin history for the overview chart
            ctx.clock._anchor_twin_s = ctx.clock._buffer_end_s
            ctx.clock.step_once()
        ov = [caller.call(caller.key("ov-kpis.children"), {"twin-tick.n_intervals": n}, ["twin-tick.n_intervals"])[0]
              for n in range(args.repeat)]
        rows.append(("overview live update (KPIs + power by source)", statistics.median(ov), max(ov), None))
        topo = [caller.call(caller.key("topo-graph-view.elements"),
                            {"twin-tick.n_intervals": n, "topo-graph.value": "power", "topo-hall.value": "all",
                             "topo-source.value": "live"}, ["twin-tick.n_intervals"])[0] for n in range(args.repeat)]
        rows.append(("topology live update (all halls)", statistics.median(topo), max(topo), None))
        ctx.close()
    if not args.no_10x:
        n, med, worst = ten_x_floor(args.repeat)
        rows.append((f"floor update, 10x site ({n:,} racks; view functions + JSON)", med, worst, 0.2))

    w = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(w)}  {'median s':>9}  {'max s':>7}  {'target s':>8}  ok")
    for name, med, worst, target in rows:
        ok = "" if target is None else ("yes" if (worst if worst is not None else med) <= target else "NO")
        print(f"{name.ljust(w)}  {med:9.4f}  {'' if worst is None else f'{worst:7.4f}':>7}  "
              f"{'' if target is None else f'{target:8.2f}':>8}  {ok}")


if __name__ == "__main__":
    main()

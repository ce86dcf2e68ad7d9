"""Benchmark twin.simulate on colossus-1: a year hourly (power and cooling for every rack) and one hour at
0.1 s (every job's waveform resolved). Prints wall time (first call in the process, which loads the site and
synthesises the weather year, and a warm repeat), peak traced memory (tracemalloc, in a third, untimed call:
numpy and Python allocations of the call), process peak RSS, and node-steps per second (ORNL RAPS: 5-9 million node-steps/s).

    python benchmarks/bench_simulate.py
"""

from __future__ import annotations

import gc
import resource
import time
import tracemalloc

from rich.console import Console
from rich.table import Table

import twin
from twin.schema.scenario import scenario_from_dict
from twin.sim.engine import site_layout

CASES = {
    "year hourly (8,760 x 2,203 racks)": {"site": "colossus-1", "hours": 8760, "step": "1h", "workload": {"fill_pu": 1.0}},
    "1 h at 0.1 s (36,000 steps)": {"site": "colossus-1", "hours": 1, "step": "0.1s", "start": "2025-07-15T14:00",
                                    "workload": {"jobs": [{"name": "train-100k", "kind": "training", "gpus": 100000,
                                                           "start_s": -60}]}},
}
TARGET_S = 3.0


def run(spec: dict):
    sc = scenario_from_dict(spec)
    gc.collect()
    t0 = time.perf_counter()
    twin.simulate(None, sc)
    cold = time.perf_counter() - t0
    gc.collect()
    t0 = time.perf_counter()
    ds = twin.simulate(None, sc)
    warm = time.perf_counter() - t0
    del ds
    gc.collect()
    tracemalloc.start()  # a separate run: tracing slows allocation, so it is not timed
    ds = twin.simulate(None, sc)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return sc, ds, cold, warm, peak


def main() -> None:
    nodes = site_layout("colossus-1").n_nodes
    table = Table(title=f"twin.simulate on colossus-1 ({nodes:,} GPU nodes, 100,000 GPUs)", title_justify="left")
    for col in ("case", "first call s", "warm s", "target s", "peak traced MB", "result MB", "node-steps/s (warm)"):
        table.add_column(col, justify="right" if col != "case" else "left")
    for name, spec in CASES.items():
        sc, ds, cold, warm, peak = run(spec)
        rate = nodes * sc.n_steps / warm
        ok = "[green]" if warm <= TARGET_S else "[red]"
        table.add_row(name, f"{cold:.2f}", f"{ok}{warm:.2f}[/]", f"{TARGET_S:.0f}", f"{peak / 1e6:,.0f}",
                      f"{ds.nbytes / 1e6:,.0f}", f"{rate / 1e6:,.1f} M")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    Console(width=130).print(table)
    print(f"process peak RSS: {rss:,.0f} MB of a 24 GB machine ({rss / 24576 * 100:.1f} %)")


if __name__ == "__main__":
    main()

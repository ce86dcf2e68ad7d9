"""Benchmark: load + validate + build both graphs, for colossus-1 and a generated 1,000,000-GPU site.

Each case runs in a fresh subprocess (cold catalog cache, its own peak RSS). Times exclude the Python
imports, which are printed separately. Run on demand:

    python benchmarks/bench_site.py            # both cases
    python benchmarks/bench_site.py --gpus 2000000

Targets (issue 2): colossus-1 <= 1.5 s; 1,000,000 GPUs <= 15 s and <= 3 GB peak memory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from twin.catalog import load_catalog
from twin.graphs import cooling_graph, power_graph
from twin.layout import expand
from twin.site import parse_site, site_path
from twin.validate import validate_site
from twin.yamlio import read_yaml
t_import = time.perf_counter() - t0
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
path = site_path(sys.argv[1])
t = {}
s = time.perf_counter()
raw = read_yaml(path); site = parse_site(raw, str(path), load_catalog()); t["load"] = time.perf_counter() - s
s = time.perf_counter(); layout = expand(site); t["expand"] = time.perf_counter() - s
s = time.perf_counter(); problems = validate_site(site, str(path), layout); t["validate"] = time.perf_counter() - s
s = time.perf_counter(); pg = power_graph(layout); t["power_graph"] = time.perf_counter() - s
s = time.perf_counter(); cg = cooling_graph(layout); t["cooling_graph"] = time.perf_counter() - s
t["total"] = sum(t.values())
print(json.dumps({"times_s": t, "import_s": t_import, "rss_import_mb": rss_import,
                  "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "problems": len(problems), "gpus": layout.n_gpus, "nodes": layout.n_nodes,
                  "racks": len(layout.racks), "equipment": len(layout.equip.ids),
                  "power_graph_nodes": pg.number_of_nodes(), "cooling_graph_nodes": cg.number_of_nodes()}))
"""


def run_case(site: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, site], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", type=int, default=1_000_000, help="GPUs of the generated site")
    args = ap.parse_args()

    import yaml

    from twin.sitegen import generate_site

    with tempfile.TemporaryDirectory() as tmp:
        gen = Path(tmp) / f"generated-{args.gpus}.yaml"
        gen.write_text(yaml.safe_dump(generate_site(args.gpus), sort_keys=False))
        gen_lines = len(gen.read_text().splitlines())
        cases = [
            ("colossus-1", "colossus-1", 1.5, None),
            (f"generated {args.gpus:,} GPUs", str(gen), 15.0, 3072.0),
        ]
        rows = [(label, run_case(ref), t_max, mem_max) for label, ref, t_max, mem_max in cases]

    # Metrics as rows, sites as columns: fits a terminal and a report.
    labels = [label for label, *_ in rows]
    lines = [
        ("GPUs", [f"{r['gpus']:,}" for _, r, *_ in rows]),
        ("GPU nodes", [f"{r['nodes']:,}" for _, r, *_ in rows]),
        ("racks", [f"{r['racks']:,}" for _, r, *_ in rows]),
        ("power / cooling equipment", [f"{r['equipment']:,}" for _, r, *_ in rows]),
        ("power graph nodes", [f"{r['power_graph_nodes']:,}" for _, r, *_ in rows]),
        ("cooling graph nodes", [f"{r['cooling_graph_nodes']:,}" for _, r, *_ in rows]),
    ]
    for key in ("load", "expand", "validate", "power_graph", "cooling_graph", "total"):
        lines.append((f"{key.replace('_', ' ')} s", [f"{r['times_s'][key]:.3f}" for _, r, *_ in rows]))
    lines.append(("target total s", [f"{t_max:g}" for *_, t_max, _ in rows]))
    lines.append(("peak RSS MB", [f"{r['rss_peak_mb']:,.0f}" for _, r, *_ in rows]))
    lines.append(("target peak MB", ["-" if m is None else f"{m:,.0f}" for *_, m in rows]))
    lines.append(("problems found", [str(r["problems"]) for _, r, *_ in rows]))
    lines.append(
        (
            "meets target",
            [
                "yes" if r["times_s"]["total"] <= t and (m is None or r["rss_peak_mb"] <= m) else "NO"
                for _, r, t, m in rows
            ],
        )
    )
    w0 = max(len(k) for k, _ in lines)
    ws = [max(len(labels[j]), *(len(v[j]) for _, v in lines)) for j in range(len(labels))]
    print("load + validate + build both graphs (fresh process per site, imports excluded)")
    print(" " * w0 + "  " + "  ".join(lab.rjust(w) for lab, w in zip(labels, ws, strict=True)))
    for k, v in lines:
        print(k.ljust(w0) + "  " + "  ".join(x.rjust(w) for x, w in zip(v, ws, strict=True)))
    print(
        f"imports: {rows[0][1]['import_s']:.2f} s, RSS after imports {rows[0][1]['rss_import_mb']:,.0f} MB; "
        f"generated site file: {gen_lines:,} YAML lines"
    )


if __name__ == "__main__":
    main()

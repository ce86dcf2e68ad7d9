"""`twin site list/show/graph`: the printed figures, and graph export that round-trips."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import networkx as nx
import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.cli.site_cmd import summary
from twin.layout import expand
from twin.site import load_site, site_names

pytestmark = pytest.mark.unit

runner = CliRunner()


@pytest.fixture(scope="module")
def colossus():
    site = load_site("colossus-1")
    return site, expand(site)


def _row(output: str, label: str) -> str:
    """The table row whose first cell is `label`."""
    for line in output.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line) if c.strip()]
        if cells and cells[0] == label:
            return line
    raise AssertionError(f"no row {label!r} in:\n{output}")


def test_show_colossus_1():
    result = runner.invoke(app, ["site", "show", "colossus-1"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "100,000" in _row(out, "GPUs")
    assert "100,000" in _row(out, "h100-sxm")
    assert "12,500" in _row(out, "GPU nodes")
    assert "1,563" in _row(out, "gpu racks")
    assert re.search(r"\b4\b", _row(out, "halls"))
    assert "196" in _row(out, "GPU arrays")
    assert "143.0 MW" in _row(out, "IT nameplate")  # 143,015.0 kW by hand (test_sites)
    assert "150.0 MW" in _row(out, "grid")
    assert "247.5 MW" in _row(out, "gas turbines")
    # Power chain: 2 x 90 MVA x 0.95 = 171 MW of substation; 64 transformers of 2.85 MW = 182.4 MW.
    assert "171.0" in _row(out, "substation")
    sub = _row(out, "transformer")
    assert "64" in sub and "182.4" in sub and "143.0" in sub


def test_show_summary_matches_layout(colossus):
    site, layout = colossus
    s = summary(site, layout)
    assert (s["gpus"], s["gpu_nodes"], s["gpu_racks"], s["halls"]) == (100_000, 12_500, 1_563, 4)
    assert s["racks_by_role"] == {"gpu": 1563, "cpu": 32, "storage": 64, "network": 544}
    tx = next(r for r in s["power_chain"] if r["kind"] == "transformer")
    assert tx["units"] == 64 and tx["rating_mw"] == pytest.approx(64 * 3000 * 0.95 / 1000)
    assert tx["below_mw"] == pytest.approx(143.015)
    loops = next(r for r in s["cooling"] if r["kind"] == "facility loop")
    assert loops["groups"] == 4 and loops["heat_mw"] == pytest.approx(143.015)
    # Heat conservation: what the loops take, the heat rejection downstream of them takes (before
    # compressor work): air chillers and water chillers together carry the four loops' heat.
    chillers = sum(r["heat_mw"] for r in s["cooling"] if r["kind"].startswith("chiller"))
    assert chillers == pytest.approx(loops["heat_mw"])


def test_list_shows_every_site_with_gpus():
    result = runner.invoke(app, ["site", "list"])
    assert result.exit_code == 0, result.output
    for name in site_names():
        assert name in result.stdout
    assert "100,000" in _row(result.stdout, "colossus-1")
    assert "384" in _row(result.stdout, "tiny")
    for name in site_names():  # every shipped site validates (test_sites), and list says so
        assert "valid" in _row(result.stdout, name) and "problem" not in _row(result.stdout, name)


def test_list_marks_an_invalid_site(tmp_path, monkeypatch):
    """A site that parses but fails validation keeps its GPU count and shows its number of problems."""
    import shutil

    import twin.site

    sites = tmp_path / "sites"
    sites.mkdir()
    shutil.copy(twin.site.sites_dir() / "tiny.yaml", sites / "tiny.yaml")
    broken = (sites / "tiny.yaml").read_text().replace("p_unit_max_kw: 1500", "p_unit_max_kw: 100")
    (sites / "short.yaml").write_text(broken.replace("name: tiny", "name: short"))
    monkeypatch.setattr(twin.site, "sites_dir", lambda: sites)
    result = runner.invoke(app, ["site", "list"])
    assert result.exit_code == 0, result.output
    row = _row(result.stdout, "short")
    assert "384" in row and "1 problem(s)" in row  # sources short of the 674 kW nameplate
    assert "valid" in _row(result.stdout, "tiny")


@pytest.mark.parametrize("fmt", ["json", "graphml"])
def test_power_graph_export_round_trips(tmp_path, fmt):
    site = load_site("tiny")
    layout = expand(site)
    out = tmp_path / f"tiny.{fmt}"
    result = runner.invoke(app, ["site", "graph", "tiny", "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    g = (
        nx.node_link_graph(json.loads(out.read_text()), edges="edges")
        if fmt == "json"
        else nx.read_graphml(out)
    )
    # Equipment (all of tiny's is on the power graph) + racks + GPU nodes.
    assert g.number_of_nodes() == len(layout.equip.ids) + len(layout.racks) + layout.n_nodes
    assert g.number_of_nodes() == 7 + 8 + 48  # grid, swgr, loop, dry, tx1, bw1, bw2; 8 racks; 6 x 8 servers
    assert sum(int(d.get("gpus", 0)) for _, d in g.nodes(data=True) if d["kind"] == "server") == layout.n_gpus
    assert g.has_edge("grid", "swgr")
    # Nameplate below each stage, by hand: GPU rack 8 x 10.2 + 1.0 CDU pump = 82.6 kW, storage rack 25 + 0.8
    # door fans = 25.8 kW; racks 1-4 (all GPU) on bw1, racks 5-8 (2 GPU, 2 storage) on bw2.
    below = nx.get_node_attributes(g, "p_below_kw")
    assert below["hall-1-tx1-bw1"] == pytest.approx(4 * 82.6)  # 330.4 kW
    assert below["hall-1-tx1-bw2"] == pytest.approx(2 * 82.6 + 2 * 25.8)  # 216.8 kW
    assert below["hall-1-tx1"] == pytest.approx(547.2)
    # The switchgear also feeds the loop pump (997 x 9.81 x 1000 / 3600 x 30 m / 0.8 = 101.88 kW) and the
    # dry cooler's 25 kW of fans.
    assert below["swgr"] == pytest.approx(547.2 + 101.881 + 25.0, abs=1e-3)
    assert not list(tmp_path.glob("*.tmp")), "the temporary file is renamed, not left behind"


def test_graph_format_follows_the_out_suffix(tmp_path):
    """Without --format a .graphml file gets GraphML (not JSON under a .graphml name); else JSON."""
    gml, js = tmp_path / "tiny.graphml", tmp_path / "tiny.json"
    for out in (gml, js):
        result = runner.invoke(app, ["site", "graph", "tiny", "--out", str(out)])
        assert result.exit_code == 0, result.output
    assert nx.read_graphml(gml).number_of_nodes() == 7 + 8 + 48
    assert nx.node_link_graph(json.loads(js.read_text()), edges="edges").number_of_nodes() == 7 + 8 + 48
    assert "(graphml)" in runner.invoke(app, ["site", "graph", "tiny", "--out", str(gml)]).stdout


def test_colossus_graph_json_without_nodes(tmp_path, colossus):
    _, layout = colossus
    out = tmp_path / "sub" / "c1.json"
    result = runner.invoke(app, ["site", "graph", "colossus-1", "--out", str(out), "--no-nodes"])
    assert result.exit_code == 0, result.output
    g = nx.node_link_graph(json.loads(out.read_text()), edges="edges")
    assert g.number_of_nodes() == len(layout.equip.ids) + len(layout.racks)  # 272 + 2,203
    assert g.number_of_nodes() == 272 + 2203
    assert sum(d["gpus"] for _, d in g.nodes(data=True) if d["kind"] == "rack") == 100_000


def test_cooling_graph_export(tmp_path, colossus):
    _, layout = colossus
    out = tmp_path / "c1-cooling.graphml"
    result = runner.invoke(
        app, ["site", "graph", "colossus-1", "--format", "graphml", "--out", str(out), "--cooling"]
    )
    assert result.exit_code == 0, result.output
    g = nx.read_graphml(out)
    cooling_equipment = len(layout.of_kind("facility_loop", "chiller", "cooling_tower", "dry_cooler"))
    # Each rack has one heat exchanger (its CDU or its rear door) between it and the loop.
    assert g.number_of_nodes() == cooling_equipment + 2 * len(layout.racks)
    # 4 loops + air chillers + water chillers + towers; 2,203 racks each with its CDU or door.
    assert g.number_of_nodes() == 7 + 2 * 2203
    kinds = nx.get_node_attributes(g, "kind")
    assert sum(1 for k in kinds.values() if k == "cdu") == 1563
    assert sum(1 for k in kinds.values() if k == "rdhx") == 2203 - 1563  # 640 network / storage / CPU racks
    # Every heat exchanger hangs between its rack and its hall's loop: rack -> hx <- loop.
    hx = "hall-1-r01-01-cdu"
    assert list(g.successors(hx)) == ["hall-1-r01-01"] and list(g.predecessors(hx)) == ["fwl-1"]


def test_bad_name_exits_1_via_console_script(tmp_path):
    """Through the real entry point (twin.cli.main): InputError -> problems listed, exit status 1."""
    code = "import sys; sys.argv = ['twin'] + sys.argv[1:]; from twin.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "site", "show", "no-such-site"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "no-such-site" in proc.stderr and "unknown site" in proc.stderr
    # A shipped site's file name from another folder: the message names the site to use instead, on one line.
    proc = subprocess.run(
        [sys.executable, "-c", code, "site", "show", "colossus-1.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    line = next(ln for ln in proc.stderr.splitlines() if "file not found" in ln)
    assert "colossus-1.yaml: file not found; the shipped site is named 'colossus-1'" in line
    assert line.endswith("frontier, tiny"), "the whole problem stays on one line"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    proc = subprocess.run(
        [sys.executable, "-c", code, "site", "validate", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert f"{bad}: line" in proc.stderr and "invalid YAML" in proc.stderr

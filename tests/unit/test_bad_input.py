"""Malformed site files: each message names the file, the key path and what was expected; the CLI exits 1.

Every case starts from sites/tiny.yaml (grid -> swgr -> hall-1 transformer -> 2 busways -> 8 racks; loop
cooled by a dry cooler), breaks one thing, and checks the exact key path and the words of the message.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from twin.cli import app
from twin.errors import InputError
from twin.paths import sites_dir
from twin.site import load_site

pytestmark = pytest.mark.unit

TINY = yaml.safe_load((sites_dir() / "tiny.yaml").read_text())
# Component positions in tiny.yaml.
GRID, SWGR, LOOP, DRY = 0, 1, 2, 3


def _comp(d, i):
    return d["components"][i]


def _cycle(d):
    d["components"].append(
        {"id": "sw2", "kind": "switchgear", "type": "mv-swgr-13.8kv-3000a", "fed_by": "swgr"}
    )
    _comp(d, SWGR)["fed_by"] = ["grid", "sw2"]


def _n_plus_1_short(d):
    _comp(d, DRY).update({"count": 2, "q_unit_max_kw": 400, "redundancy": "N+1"})


def _2n_feed_too_small(d):
    d["components"].append(
        {
            "id": "swgr2",
            "kind": "switchgear",
            "type": "mv-swgr-13.8kv-3000a",
            "fed_by": "grid",
            "p_unit_max_kw": 400,
        }
    )
    d["halls"][0].update({"fed_by": ["swgr", "swgr2"], "redundancy": "2N"})


def _two_halls_same_unit_ids(d):
    hall = d["halls"][0]
    hall.update({"id": "hall-{n}", "count": 2})
    hall["distribution"][0]["id"] = "tx{i}"  # no {parent}/{hall}: hall-2's tx1 is hall-1's tx1


def _water_chiller_alone(d):
    d["components"].append(
        {"id": "ch", "kind": "chiller", "type": "water-cooled-chiller-3500kw", "fed_by": "swgr"}
    )
    _comp(d, LOOP)["cooled_by"] = "ch"


def _air_chiller_with_tower(d):
    d["components"] += [
        {
            "id": "ch",
            "kind": "chiller",
            "type": "air-cooled-chiller-1500kw",
            "fed_by": "swgr",
            "cooled_by": "ct",
        },
        {"id": "ct", "kind": "cooling_tower", "type": "ct-cell-5000kw", "fed_by": "swgr"},
    ]


# (case id, text or mutation of the tiny mapping, expected key path, words the message must contain)
CASES = [
    (
        "bad-yaml",
        "name: tiny\ncomponents: [ {id: grid, kind: utility_feed\n",
        "line 3, column 1",
        ["invalid YAML"],
    ),
    (
        "non-mapping-top",
        "- just\n- a list\n",
        "",
        ["expected a mapping at the top of the site file", "got list"],
    ),
    (
        "unknown-key",
        lambda d: d.__setitem__("wibble", "red"),
        "wibble",
        ["unknown key 'wibble'", "expected one of: components, confidence, description"],
    ),
    (
        "misspelt-key",
        lambda d: _comp(d, LOOP).__setitem__("t_suply_c", 24),
        "components[2].t_suply_c",
        ["unknown key 't_suply_c'", "did you mean 't_supply_c'?"],
    ),
    (
        "unit-suffix",
        lambda d: _comp(d, GRID).__setitem__("p_unit_max_mw", 1.5),
        "components[0].p_unit_max_mw",
        ["unknown key 'p_unit_max_mw'", "did you mean 'p_unit_max_kw'", "unit is part of the key name"],
    ),
    (
        "unknown-catalog-type",
        lambda d: _comp(d, SWGR).__setitem__("type", "mv-swgr-99kv"),
        "components[1].type",
        ["unknown catalog type 'mv-swgr-99kv' for kind switchgear", "expected one of: mv-swgr-13.8kv-3000a"],
    ),
    (
        "type-as-a-list",  # YAML `type: [mv-swgr-13.8kv-3000a]`: once a traceback (unhashable list)
        lambda d: _comp(d, SWGR).__setitem__("type", ["mv-swgr-13.8kv-3000a"]),
        "components[1].type",
        ["unknown catalog type ['mv-swgr-13.8kv-3000a'] for kind switchgear", "expected one of"],
    ),
    (
        "unknown-rack-type",
        lambda d: d["halls"][0]["racks"][0].__setitem__("type", "gpu-rack-h1000"),
        "halls[0].racks[0].type",
        ["unknown catalog type 'gpu-rack-h1000' for kind rack", "gpu-rack-hgx-h100-lc"],
    ),
    (
        "dangling-reference",
        lambda d: _comp(d, SWGR).__setitem__("fed_by", "grdi"),
        "components[1].fed_by",
        ["'grdi' is not the id of any component", "did you mean 'grid'?"],
    ),
    (
        "dangling-hall-feed",
        lambda d: d["halls"][0].__setitem__("fed_by", "swgr-{n}"),
        "halls[0].fed_by",
        ["hall-1", "'swgr-1' is not the id of any component", "did you mean 'swgr'?"],
    ),
    (
        "duplicate-id",
        lambda d: _comp(d, DRY).__setitem__("id", "loop"),
        "components[3].id",
        ["duplicate id 'loop'", "first used at components[2]", "expected every id in the site to be unique"],
    ),
    (
        "negative-rating",
        lambda d: _comp(d, GRID).__setitem__("p_unit_max_kw", -1500),
        "components[0].p_unit_max_kw",
        ["greater than 0", "got -1500"],
    ),
    (
        "efficiency-above-1",
        lambda d: _comp(d, SWGR).__setitem__("efficiency_pu", 1.2),
        "components[1].efficiency_pu",
        ["less than or equal to 1", "got 1.2"],
    ),
    (
        "power-cycle",
        _cycle,
        "components[1].fed_by",
        ["power cycle: swgr <- sw2 <- swgr", "expected the power graph to run one way"],
    ),
    (
        "rack-without-power",
        lambda d: _comp(d, SWGR).pop("fed_by"),
        "halls[0]",
        [
            "8 of 8 racks in hall-1",
            "hall-1-r01-01",
            "reach no power source",
            "ends at swgr",
            "expected a path through fed_by up to a utility_feed, gas_turbine or battery",
        ],
    ),
    (
        "rack-without-cooling",
        lambda d: _comp(d, LOOP).pop("cooled_by"),
        "halls[0]",
        [
            "8 of 8 racks in hall-1",
            "have no path for their heat to heat rejection",
            "expected facility loop -> chiller / cooling tower / dry cooler",
        ],
    ),
    (
        "loop-without-heat-rejection",
        lambda d: _comp(d, LOOP).pop("cooled_by"),
        "components[2].cooled_by",
        ["facility loop 'loop' has no cooled_by", "expected a chiller, cooling tower or dry cooler"],
    ),
    (
        "nodes-do-not-fit",
        lambda d: d["halls"][0]["racks"][0].__setitem__("nodes", 60),
        "halls[0].racks[0]",
        ["60 nodes at 8 per rack fill 8 racks, but count is 6"],
    ),
    (
        "hall-cooled-by-wrong-kind",
        lambda d: d["halls"][0].__setitem__("cooled_by", "dry"),
        "halls[0].cooled_by",
        ["'dry' is a dry_cooler", "must name a facility_loop"],
    ),
    (
        "air-chiller-with-tower",
        _air_chiller_with_tower,
        "components[4].cooled_by",
        ["air-cooled chiller rejects its heat to outdoor air", "expected no cooled_by"],
    ),
    # tiny: 6 x 82.6 + 2 x 25.8 = 547.2 kW on one 2,850 kW transformer; 60 GPU racks overload it.
    (
        "transformer-overloaded",
        lambda d: d["halls"][0]["racks"][0].__setitem__("count", 60),
        "halls[0].distribution[0]",
        [
            "transformer 'hall-1-tx1' rated 2,850 kW",
            "5,008 kW",
            "ratio 1.757 > 1.000",
            "expected nameplate below <= rating x oversubscription_pu (1)",
        ],
    ),
    (
        "sources-short",
        lambda d: _comp(d, GRID).__setitem__("p_unit_max_kw", 100),
        "components",
        ["sources total 0.1 MW", "short by", "expected sources at least equal to that"],
    ),
    (
        "n+1-with-one-unit",
        lambda d: _comp(d, DRY).__setitem__("redundancy", "N+1"),
        "components[3].count",
        ["dry_cooler 'dry' declares N+1 with count 1", "expected at least 2 units"],
    ),
    # tiny's hall: 6 x 82.6 + 2 x 25.8 = 547.2 kW of nameplate, all of it heat into the loop.
    (
        "n+1-short",
        _n_plus_1_short,
        "components[3].redundancy",
        ["N+1: 1 of 2 units of dry_cooler 'dry' reject 400 kW, short of the 547 kW of heat"],
    ),
    (
        "2n-feed-too-small",
        _2n_feed_too_small,
        "halls[0].fed_by",
        [
            "2N: with the other side lost, switchgear 'swgr2' rated 400 kW would carry 547 kW",
            "expected each feed to carry its halls alone",
        ],
    ),
    (
        "2n-hall-one-feed",
        lambda d: d["halls"][0].__setitem__("redundancy", "2N"),
        "halls[0].fed_by",
        ["hall-1 declares 2N with 1 feed", "expected at least 2 feeds"],
    ),
    (
        "loop-too-warm-for-cdu",
        lambda d: _comp(d, LOOP).__setitem__("t_supply_c", 44),
        "halls[0].racks[0]",
        ["loop 'loop' supplies 44 °C", "reaches 47 °C", "limit of 45 °C", "expected a colder loop"],
    ),
    (
        "bad-id-pattern",
        lambda d: d["halls"][0].__setitem__("fed_by", "swgr-{hall}"),
        "halls[0].fed_by[0]",
        ["'swgr-{hall}' uses {hall}", "expected only {n}"],
    ),
    (
        "expanded-ids-collide",
        _two_halls_same_unit_ids,
        "halls[0].distribution[0].id",
        ["expanded unit id(s) collide", "tx1", "expected a pattern that makes every unit unique"],
    ),
    (
        "water-chiller-without-tower",
        _water_chiller_alone,
        "components[4].cooled_by",
        ["water-cooled chiller 'ch' has no cooled_by", "cooling tower or dry cooler"],
    ),
    (
        "liquid-cooled-servers-without-cdu",
        lambda d: d["halls"][0]["racks"][0].update({"cdu_type": None, "rdhx_type": "active-rdhx-50kw"}),
        "halls[0].racks[0]",
        ["server hgx-h100-8gpu-lc puts 0.8 of its heat into cold plates", "expected a cdu_type"],
    ),
    (
        "nodes-on-storage-racks",
        lambda d: d["halls"][0]["racks"][1].__setitem__("nodes", 4),
        "halls[0].racks[1]",
        ["nodes is only for GPU racks, and storage-rack-nvme is a storage rack", "expected no nodes"],
    ),
    (
        "ups-curve-lengths-differ",
        lambda d: d["halls"][0]["distribution"].insert(
            1,
            {"kind": "ups", "p_unit_max_kw": 3000, "load_pu": [0.25, 0.5, 1.0], "efficiency_pu": [0.95, 0.97],
             "source": "test", "confidence": "assumed"},
        ),
        "halls[0].distribution[1]",
        ["load_pu has 3 points and efficiency_pu 2", "expected one efficiency per load point"],
    ),
    (
        "unknown-climate",
        lambda d: d["location"].__setitem__("climate", "atlantis"),
        "location.climate",
        ["no climate statistics 'atlantis' in data/climate", "expected one of: memphis"],
    ),
]


def _write(tmp_path: Path, case) -> Path:
    name, change, _, _ = case
    path = tmp_path / f"{name}.yaml"
    if isinstance(change, str):
        path.write_text(change)
    else:
        data = copy.deepcopy(TINY)
        change(data)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_at_least_twelve_kinds():
    assert len(CASES) >= 12
    assert len({c[0] for c in CASES}) == len(CASES)


def test_tiny_itself_is_valid():
    """The base of every case is clean, and is the site the comments above describe."""
    from twin.layout import expand
    from twin.validate import validate_site

    site = load_site(sites_dir() / "tiny.yaml")
    layout = expand(site)
    assert validate_site(site, "tiny.yaml", layout) == []
    assert [c.id for c in site.components] == ["grid", "swgr", "loop", "dry"]  # GRID, SWGR, LOOP, DRY
    assert layout.n_gpus == 6 * 8 * 8  # 6 GPU racks x 8 servers x 8 GPUs
    assert len(layout.racks) == 8
    # 6 x 82.6 + 2 x 25.8 = 547.2 kW of rack nameplate, the figure the capacity cases are built around
    assert float(layout.racks.p_max_kw.sum()) == pytest.approx(547.2)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_message_names_file_key_and_expectation(tmp_path, case):
    path = _write(tmp_path, case)
    _, _, key, words = case
    with pytest.raises(InputError) as info:
        load_site(path)
    problems = info.value.problems
    assert all(p.file == str(path) for p in problems), "every problem names the file"
    matching = [p for p in problems if p.key == key]
    assert matching, f"no problem at key {key!r}; got: {[str(p) for p in problems]}"
    assert any(all(w in p.message for w in words) for p in matching), (
        f"expected {words} in one of: {[p.message for p in matching]}"
    )
    text = str(info.value)
    assert str(path) in text and (key in text)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cli_validate_exits_1_listing_problems(tmp_path, case):
    path = _write(tmp_path, case)
    _, _, key, words = case
    result = CliRunner().invoke(app, ["site", "validate", str(path)])
    assert result.exit_code == 1, result.output
    assert "valid\n" not in result.stdout
    # One problem per line: some line names the file, the key and the expectation.
    lines = result.output.splitlines()
    prefix = f"{path}: {key}: " if key else f"{path}: "
    assert any(line.startswith(prefix) and all(w in line for w in words) for line in lines), result.output


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match="file not found"):
        load_site(path)
    result = CliRunner().invoke(app, ["site", "validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}: file not found" in result.output


def test_cli_validate_valid_file():
    result = CliRunner().invoke(app, ["site", "validate", str(sites_dir() / "tiny.yaml")])
    assert result.exit_code == 0
    assert result.stdout.strip() == "valid"


def test_every_problem_listed(tmp_path):
    """Two independent faults give two problems, both listed (not just the first)."""
    data = copy.deepcopy(TINY)
    _comp(data, GRID)["p_unit_max_kw"] = -1
    _comp(data, SWGR)["efficiency_pu"] = 2
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError) as info:
        load_site(path)
    keys = {p.key for p in info.value.problems}
    assert {"components[0].p_unit_max_kw", "components[1].efficiency_pu"} <= keys
    result = CliRunner().invoke(app, ["site", "validate", str(path)])
    assert result.exit_code == 1
    assert "2 problem(s) found" in result.output

"""The validation layer: named `check_*` functions run on a site before any simulation or optimisation.

Each check takes the expanded layout (`twin.layout.expand`) and the file name, and returns a list of
`Problem(file, key path, message)`; the message says what was found and what was expected. The key
path points at the YAML key a user must change: `components[5].fed_by`, `halls[0].cooled_by`,
`halls[1].distribution[2]`, `halls[0].racks[3]`.

`validate_site` runs them in three tiers:

1. `check_templates` on the Site alone (the id patterns must format before the halls can be expanded);
2. structure on the expanded layout: unique ids, references, cycles, power and cooling paths, ranges;
3. capacity, only once the structure is sound (figures summed over a broken graph mean nothing):
   capacity chain, cooling capacity, source adequacy, declared redundancy.

Conventions the capacity checks share (written down once here):

- Nameplate below a component is the sum of the rack nameplates and cooling-plant electrical ratings
  fed through it (`SiteLayout.nameplate_below_kw`); a child fed by k load-side parents puts 1/k on each.
- `site.oversubscription_pu` is the declared ratio of nameplate below to rating allowed anywhere:
  a stage passes when nameplate_below <= p_max_kw x oversubscription_pu. The same diversity allowance
  applies to heat: every kW of rack nameplate becomes a kW of heat in its facility loop.
- N+1 on a unit group (`count` units in parallel): count - 1 units must still carry what the group
  serves. N+1 on a hall distribution level: under each parent, count - 1 of its units must carry the
  parent's load (the load transfers, e.g. dual-corded racks). N+1 on a hall: losing any one feed, the
  spare capacity of the other feeds must take that feed's share of the hall.
- 2N on a component: at least two fed_by, each able to carry the whole component on its own. 2N on a
  hall: at least two feeds, each able to carry the whole hall on top of the rest of its load (the other
  side fails as a whole).
"""

from __future__ import annotations

import difflib
import string
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.sparse as sp

from twin.errors import Problem
from twin.layout import SiteLayout, expand
from twin.paths import data_dir
from twin.schema.components import (
    CONVERSION_KINDS,
    COOLING_KINDS,
    HEAT_REJECTION_KINDS,
    SOURCE_KINDS,
    Chiller,
    FacilityLoop,
)
from twin.schema.site import Site

POWER_KINDS = (*SOURCE_KINDS, *CONVERSION_KINDS)
# What a component's cooled_by may name, by the component's kind.
COOLED_BY_KINDS = {
    "facility_loop": HEAT_REJECTION_KINDS,
    "chiller": ("cooling_tower", "dry_cooler"),  # condenser water of a water-cooled chiller
    "cooling_tower": (),  # rejects to the atmosphere
    "dry_cooler": (),
}
COOLED_BY_DEFAULT = ("facility_loop", *HEAT_REJECTION_KINDS)  # e.g. a UPS room on facility water
# Kinds with no upstream power connection.
NO_FEED_KINDS = ("utility_feed", "gas_turbine")
# Cooling plant that draws electric power and must therefore be fed.
POWERED_COOLING = ("chiller", "cooling_tower", "dry_cooler")
SHOW = 3  # how many ids a message lists before "…"
TOL = 1e-9


# ------------------------------------------------------------------------------------ helpers


def _kw(x: float) -> str:
    return f"{x:,.0f} kW"


def _ids(ids, total: int | None = None) -> str:
    ids = list(ids)
    total = len(ids) if total is None else total
    shown = ", ".join(ids[:SHOW])
    return shown + (f", … ({total} in all)" if total > SHOW else "")


@dataclass(frozen=True)
class _Where:
    """Key paths and labels of the expanded layout, computed once per layout."""

    eq_key: list[str]  # key path of each equipment (component or hall distribution level)
    comp_index: dict[str, int]  # component id -> index in site.components
    hall_template: np.ndarray  # template index of each hall instance
    hall_feeds: list[list[str]]  # formatted fed_by of each hall instance
    hall_loops: list[list[str]]  # formatted cooled_by of each hall instance
    # (template, instance, level, first equipment index, unit count, units per parent)
    level_ranges: list[tuple[int, int, int, int, int, int]]
    group_key: list[str]  # key path of each rack group (layout.groups)

    def label(self, layout: SiteLayout, i: int) -> str:
        return f"{layout.equip.kind[i]} '{layout.equip.ids[i]}'"


def _where(layout: SiteLayout) -> _Where:
    cached = layout.__dict__.get("_validate_where")
    if cached is not None:
        return cached
    site = layout.site
    eq_key = [f"components[{i}]" for i in range(len(site.components))]
    comp_index: dict[str, int] = {}
    for i, c in enumerate(site.components):
        comp_index.setdefault(c.id, i)
    templates, feeds, loops, ranges = [], [], [], []
    start = len(site.components)
    for t, hall in enumerate(site.halls):
        for k in range(hall.count):
            n = hall.index_start + k
            templates.append(t)
            feeds.append([f.format(n=n) for f in hall.fed_by])
            loops.append([c.format(n=n) for c in hall.cooled_by])
            units = 1
            for d, level in enumerate(hall.distribution):
                units *= level.count
                ranges.append((t, k, d, start, units, level.count))
                eq_key.extend([f"halls[{t}].distribution[{d}]"] * units)
                start += units
    seen: Counter = Counter()
    group_key = []
    for info in layout.groups:
        group_key.append(f"halls[{info.hall_template}].racks[{seen[info.hall_template]}]")
        seen[info.hall_template] += 1
    if len(eq_key) != len(layout.equip.ids):  # pragma: no cover - expand and this walk disagree
        raise RuntimeError("equipment table does not match the site's templates")
    w = _Where(eq_key, comp_index, np.array(templates, dtype=int), feeds, loops, ranges, group_key)
    layout.__dict__["_validate_where"] = w
    return w


def _parent_matrix(layout: SiteLayout, parents: list[list[str]]) -> sp.csr_matrix:
    """child x parent (1 where the parent exists), over every equipment kind."""
    idx = layout.index
    r, c = [], []
    for child, ps in enumerate(parents):
        for p in ps:
            j = idx.get(p)
            if j is not None:
                r.append(child)
                c.append(j)
    n = len(layout.equip.ids)
    return sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))


def _reach_down(parent_of: sp.csr_matrix, start: np.ndarray) -> np.ndarray:
    """Equipment reached from `start` by following parent -> child edges (fixed point of sparse products)."""
    reach = start.copy()
    for _ in range(parent_of.shape[0] + 1):
        new = reach | (parent_of @ reach.astype(float) > 0)
        if (new == reach).all():
            break
        reach = new
    return reach


def _dead_ends(
    layout: SiteLayout, start_ids: list[str], parents: list[list[str]], good: np.ndarray
) -> list[str]:
    """Ids where the upward walk from `start_ids` stops without reaching a `good` equipment."""
    idx = layout.index
    stack = [idx[s] for s in start_ids if s in idx]
    seen, ends = set(), []
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        ps = [idx[p] for p in parents[i] if p in idx]
        if not ps and not good[i]:
            ends.append(layout.equip.ids[i])
        stack.extend(ps)
    missing = [s for s in start_ids if s not in idx]
    return sorted(set(ends)) + missing


def _chain_end(ends: list[str]) -> str:
    if not ends:
        return "the supply chain runs in a loop without reaching a source"
    return f"the supply chain ends at {_ids(ends)} with nothing feeding it"


def _rack_problems(layout, file, bad: np.ndarray, what: str, explain: Callable[[int], str]) -> list[Problem]:
    """One problem per hall template naming the first racks that fail and why."""
    w = _where(layout)
    r = layout.racks
    out = []
    rack_template = w.hall_template[r.hall]
    for t in np.unique(rack_template[bad]):
        sel = bad & (rack_template == t)
        instances = np.unique(r.hall[sel])
        halls = [layout.hall_ids[h] for h in instances]
        total_t = int((rack_template == t).sum())
        msg = (
            f"{int(sel.sum())} of {total_t} racks in {_ids(halls)} ({_ids(r.ids[sel].tolist(), int(sel.sum()))}) "
            f"{what}: {explain(int(instances[0]))}"
        )
        out.append(Problem(file, f"halls[{t}]", msg))
    return out


# ------------------------------------------------------------------------------------ tier 1


def check_templates(site: Site, file: str) -> list[Problem]:
    """Id patterns of halls and their distribution levels must format with the fields they may use."""
    problems = []
    fields = {"hall id": {"n"}, "feed": {"n"}, "level": {"parent", "i", "n", "hall"}}

    def bad_fields(pattern: str, allowed: set[str]) -> str | None:
        try:
            names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
        except ValueError as exc:
            return f"{pattern!r} is not a valid id pattern ({exc}); use {{n}} for the hall number"
        unknown = sorted(n for n in names if n.split(".")[0].split("[")[0] not in allowed)
        if unknown or any(n == "" for n in names):
            allowed_s = ", ".join("{" + a + "}" for a in sorted(allowed))
            return f"{pattern!r} uses {', '.join('{' + u + '}' for u in unknown) or '{}'}; expected only {allowed_s}"
        return None

    for t, hall in enumerate(site.halls):
        if (msg := bad_fields(hall.id, fields["hall id"])) is not None:
            problems.append(Problem(file, f"halls[{t}].id", msg))
        for attr in ("fed_by", "cooled_by"):
            for j, ref in enumerate(getattr(hall, attr)):
                if (msg := bad_fields(ref, fields["feed"])) is not None:
                    problems.append(Problem(file, f"halls[{t}].{attr}[{j}]", msg))
        for d, level in enumerate(hall.distribution):
            if (msg := bad_fields(level.id, fields["level"])) is not None:
                problems.append(Problem(file, f"halls[{t}].distribution[{d}].id", msg))
    return problems


# ------------------------------------------------------------------------------------ tier 2


def check_unique_ids(layout: SiteLayout, file: str) -> list[Problem]:
    """Component ids, hall ids, expanded distribution units and rack ids must all be distinct."""
    w = _where(layout)
    site = layout.site
    problems = []
    first: dict[str, str] = {}
    for i, c in enumerate(site.components):
        if c.id in first:
            problems.append(
                Problem(
                    file,
                    f"components[{i}].id",
                    f"duplicate id '{c.id}' (first used at {first[c.id]}); "
                    "expected every id in the site to be unique",
                )
            )
        else:
            first[c.id] = f"components[{i}]"
    for h, hid in enumerate(layout.hall_ids):
        key = f"halls[{w.hall_template[h]}].id"
        if hid in first:
            problems.append(
                Problem(
                    file,
                    key,
                    f"hall id '{hid}' is already used at {first[hid]}; "
                    "expected every id in the site to be unique",
                )
            )
        else:
            first[hid] = key
    dup_units: dict[str, list[str]] = defaultdict(list)
    where_first: dict[str, str] = {}
    for i in range(len(site.components), len(layout.equip.ids)):
        uid = layout.equip.ids[i]
        if uid in first:
            dup_units[w.eq_key[i]].append(uid)
            where_first.setdefault(w.eq_key[i], first[uid])
        else:
            first[uid] = w.eq_key[i]
    for key, ids in dup_units.items():
        problems.append(
            Problem(
                file,
                f"{key}.id",
                f"{len(ids)} expanded unit id(s) collide with ids used elsewhere "
                f"({_ids(ids)}; first at {where_first[key]}); expected a pattern that makes every "
                "unit unique, e.g. '{parent}-tx{i}'",
            )
        )
    rack_ids = layout.racks.ids
    uniq, counts = np.unique(rack_ids, return_counts=True)
    clash = set(uniq[counts > 1].tolist()) | (set(uniq.tolist()) & set(first))
    if clash:
        bad = np.isin(rack_ids, list(clash))
        problems += _rack_problems(
            layout,
            file,
            bad,
            "have ids that are not unique",
            lambda h: "expected distinct hall ids, so rack ids '<hall>-rRR-CC' are distinct",
        )
    return problems


def _reference_problem(layout, file, key, ref, allowed_kinds, what) -> Problem | None:
    i = layout.index.get(ref)
    if i is None:
        candidates = [
            e for e, k in zip(layout.equip.ids, layout.equip.kind, strict=True) if k in allowed_kinds
        ]
        close = difflib.get_close_matches(ref, candidates, n=3, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(repr(c) for c in close)}?"
            if close
            else f"expected the id of a {' / '.join(allowed_kinds)}"
        )
        if candidates and not close:
            hint += f", e.g. {_ids(candidates)}"
        return Problem(file, key, f"'{ref}' is not the id of any component; {hint}")
    kind = layout.equip.kind[i]
    if kind not in allowed_kinds:
        return Problem(file, key, f"'{ref}' is a {kind}; {what} must name a {' / '.join(allowed_kinds)}")
    return None


def check_references(layout: SiteLayout, file: str) -> list[Problem]:
    """fed_by / cooled_by of components and halls name existing equipment of a sensible kind; the
    location's climate names shipped climate statistics."""
    w = _where(layout)
    site = layout.site
    problems = []
    climates = sorted(p.stem for p in (data_dir() / "climate").glob("*.yaml"))
    if site.location.climate not in climates:
        problems.append(
            Problem(
                file,
                "location.climate",
                f"no climate statistics '{site.location.climate}' in data/climate; expected one of: "
                f"{', '.join(climates)}",
            )
        )
    for i, comp in enumerate(site.components):
        if comp.fed_by and comp.kind in NO_FEED_KINDS:
            problems.append(
                Problem(
                    file,
                    f"components[{i}].fed_by",
                    f"a {comp.kind} is a source at the top of the "
                    f"power graph; expected no fed_by (got {', '.join(comp.fed_by)})",
                )
            )
        else:
            for ref in comp.fed_by:
                if p := _reference_problem(
                    layout, file, f"components[{i}].fed_by", ref, POWER_KINDS, "fed_by"
                ):
                    problems.append(p)
        allowed = COOLED_BY_KINDS.get(comp.kind, COOLED_BY_DEFAULT)
        if isinstance(comp, Chiller) and comp.condenser == "air":
            allowed = ()
        if comp.cooled_by and not allowed:
            why = (
                "an air-cooled chiller rejects its heat to outdoor air"
                if comp.kind == "chiller"
                else f"a {comp.kind} rejects its heat to the atmosphere"
            )
            problems.append(
                Problem(
                    file,
                    f"components[{i}].cooled_by",
                    f"{why}; expected no cooled_by (got {', '.join(comp.cooled_by)})",
                )
            )
            continue
        for ref in comp.cooled_by:
            if p := _reference_problem(layout, file, f"components[{i}].cooled_by", ref, allowed, "cooled_by"):
                problems.append(p)
    seen = set()
    for h, (feeds, loops) in enumerate(zip(w.hall_feeds, w.hall_loops, strict=True)):
        t = int(w.hall_template[h])
        for attr, refs, kinds in (("fed_by", feeds, POWER_KINDS), ("cooled_by", loops, ("facility_loop",))):
            for ref in refs:
                if (t, attr, ref) in seen:
                    continue
                seen.add((t, attr, ref))
                p = _reference_problem(layout, file, f"halls[{t}].{attr}", ref, kinds, f"a hall's {attr}")
                if p is not None:
                    problems.append(Problem(p.file, p.key, f"{layout.hall_ids[h]}: {p.message}"))
    return problems


def _equipment_graph(layout: SiteLayout, parents: list[list[str]]) -> nx.DiGraph:
    g = nx.DiGraph()
    idx = layout.index
    for i, ps in enumerate(parents):
        for p in ps:
            if p in idx:
                g.add_edge(p, layout.equip.ids[i])
    return g


def check_cycles(layout: SiteLayout, file: str) -> list[Problem]:
    """The power graph and the cooling graph run one way (sources -> loads, heat rejection -> racks)."""
    w = _where(layout)
    problems = []
    for name, parents, attr in (
        ("power", layout.equip.power_parents, "fed_by"),
        ("cooling", layout.equip.cooling_parents, "cooled_by"),
    ):
        g = _equipment_graph(layout, parents)
        for scc in nx.strongly_connected_components(g):
            if len(scc) == 1 and not g.has_edge(next(iter(scc)), next(iter(scc))):
                continue
            cycle = [u for u, _ in nx.find_cycle(g.subgraph(scc))]
            first = min(cycle, key=lambda e: layout.index[e])
            k = cycle.index(first)
            cycle = cycle[k:] + cycle[:k]
            # Edges run parent -> child; show the chain as "x is fed by y is fed by ... x".
            chain = " <- ".join([*cycle, cycle[0]][::-1]) if len(cycle) > 1 else f"{first} <- {first}"
            problems.append(
                Problem(
                    file,
                    f"{w.eq_key[layout.index[first]]}.{attr}",
                    f"{name} cycle: {chain}; expected the {name} graph to run one way "
                    f"({'from sources down to the racks' if name == 'power' else 'from heat rejection down to the racks'})",
                )
            )
    return problems


def check_power_paths(layout: SiteLayout, file: str) -> list[Problem]:
    """Every rack, every conversion stage and all powered cooling plant reach a power source."""
    w = _where(layout)
    site = layout.site
    kinds = layout.kind_array
    parents = layout.equip.power_parents
    reach = _reach_down(_parent_matrix(layout, parents), np.isin(kinds, SOURCE_KINDS))
    problems = []
    for i, comp in enumerate(site.components):
        if comp.kind in POWERED_COOLING and not comp.fed_by:
            problems.append(
                Problem(
                    file,
                    f"components[{i}].fed_by",
                    f"{comp.kind} '{comp.id}' draws power "
                    "(compressors, fans) but has no fed_by; expected the id of the switchgear or "
                    "other power equipment feeding it",
                )
            )
        elif isinstance(comp, FacilityLoop) and comp.pump_type and not comp.fed_by:
            problems.append(
                Problem(
                    file,
                    f"components[{i}].fed_by",
                    f"facility loop '{comp.id}' has pumps "
                    f"({comp.pump_count} x {comp.pump_type}) but no fed_by; expected the id of the "
                    "power equipment feeding them",
                )
            )
        elif (comp.kind in CONVERSION_KINDS or comp.fed_by) and not reach[i]:
            ends = _dead_ends(layout, [comp.id], parents, np.isin(kinds, SOURCE_KINDS))
            problems.append(
                Problem(
                    file,
                    f"components[{i}].fed_by",
                    f"{comp.kind} '{comp.id}' reaches no power "
                    f"source: {_chain_end(ends)}; expected a path up to a utility_feed, gas_turbine "
                    "or battery",
                )
            )
    bad = ~reach[layout.racks.feeder]
    if bad.any():

        def explain(h):
            ends = _dead_ends(layout, w.hall_feeds[h], parents, np.isin(kinds, SOURCE_KINDS))
            return (
                f"{_chain_end(ends)}; expected a path through fed_by up to a utility_feed, gas_turbine "
                "or battery"
            )

        problems += _rack_problems(layout, file, bad, "reach no power source", explain)
    return problems


def _rejects_heat(layout: SiteLayout) -> np.ndarray:
    """Equipment whose heat reaches the atmosphere (tower, dry cooler, air-cooled chiller, or through them)."""
    kinds = layout.kind_array
    start = np.isin(kinds, ("cooling_tower", "dry_cooler"))
    for i in np.flatnonzero(kinds == "chiller"):
        start[i] = layout.equip.model[i].condenser == "air"
    cooling = np.isin(kinds, COOLING_KINDS)
    m = _parent_matrix(layout, layout.equip.cooling_parents)
    m = sp.diags(cooling.astype(float)) @ m @ sp.diags(cooling.astype(float))
    return _reach_down(m.tocsr(), start)


def check_cooling_paths(layout: SiteLayout, file: str) -> list[Problem]:
    """Every rack's heat reaches heat rejection: rack -> CDU / rear door -> facility loop -> ... -> air."""
    w = _where(layout)
    site = layout.site
    ok = _rejects_heat(layout)
    problems = []
    for i, comp in enumerate(site.components):
        if isinstance(comp, Chiller) and comp.condenser == "water" and not comp.cooled_by:
            problems.append(
                Problem(
                    file,
                    f"components[{i}].cooled_by",
                    f"water-cooled chiller '{comp.id}' has no "
                    "cooled_by; expected the id of the cooling tower or dry cooler taking its "
                    "condenser heat",
                )
            )
        elif isinstance(comp, FacilityLoop) and not ok[i]:
            if not comp.cooled_by:
                why = "has no cooled_by"
            else:
                ends = _dead_ends(layout, list(comp.cooled_by), layout.equip.cooling_parents, ok)
                why = f"passes its heat to {_ids(ends)}, which rejects it nowhere"
            problems.append(
                Problem(
                    file,
                    f"components[{i}].cooled_by",
                    f"facility loop '{comp.id}' {why}; expected "
                    "a chiller, cooling tower or dry cooler that rejects the heat outdoors",
                )
            )
    r = layout.racks
    bad = (r.loop < 0) | ~ok[np.maximum(r.loop, 0)]
    if bad.any():

        def explain(h):
            loops = w.hall_loops[h]
            missing = [lp for lp in loops if lp not in layout.index]
            if missing:
                return f"cooled_by names {_ids(missing)}, which does not exist; expected a facility loop id"
            return (
                f"their loop {_ids(loops)} does not reach heat rejection; expected facility loop -> chiller / "
                "cooling tower / dry cooler"
            )

        problems += _rack_problems(
            layout, file, bad, "have no path for their heat to heat rejection", explain
        )
    return problems


def check_ranges(layout: SiteLayout, file: str) -> list[Problem]:
    """Consistency a single field's bounds cannot express (pydantic already checks each field's range)."""
    w = _where(layout)
    site = layout.site
    problems = []
    for i, c in enumerate(site.components):
        key = f"components[{i}]"
        if c.kind in ("substation", "transformer") and c.v_secondary_kv >= c.v_primary_kv:
            problems.append(
                Problem(
                    file,
                    f"{key}.v_secondary_kv",
                    f"{c.kind} '{c.id}' steps {c.v_primary_kv} kV up "
                    f"to {c.v_secondary_kv} kV; expected v_secondary_kv below v_primary_kv",
                )
            )
        if c.kind == "battery" and c.soc_min_pu >= c.soc_max_pu:
            problems.append(
                Problem(
                    file,
                    f"{key}.soc_min_pu",
                    f"battery '{c.id}' soc_min_pu {c.soc_min_pu} is not "
                    f"below soc_max_pu {c.soc_max_pu}; expected soc_min_pu < soc_max_pu",
                )
            )
        if isinstance(c, FacilityLoop) and c.t_supply_c <= 0:
            problems.append(
                Problem(
                    file,
                    f"{key}.t_supply_c",
                    f"facility loop '{c.id}' supplies {c.t_supply_c} °C; expected water above 0 °C",
                )
            )
    for t, hall in enumerate(site.halls):
        for d, lv in enumerate(hall.distribution):
            if lv.kind == "transformer" and lv.v_secondary_kv >= lv.v_primary_kv:
                problems.append(
                    Problem(
                        file,
                        f"halls[{t}].distribution[{d}].v_secondary_kv",
                        f"transformer steps {lv.v_primary_kv} kV up to {lv.v_secondary_kv} kV; "
                        "expected v_secondary_kv below v_primary_kv",
                    )
                )
    # Rack groups: the server's budget, the GPU's idle below TDP, the CDU / door able to take the rack's heat,
    # the CDU's secondary supply within its limit on the loop the rack sits on.
    loops_of_template: dict[int, set[int]] = defaultdict(set)
    for h, loops in enumerate(w.hall_loops):
        for lp in loops:
            if (j := layout.index.get(lp)) is not None and layout.equip.kind[j] == "facility_loop":
                loops_of_template[int(w.hall_template[h])].add(j)
    for g, info in enumerate(layout.groups):
        key = w.group_key[g]
        rack = info.rack
        if info.server is not None and info.gpu is not None:
            s, gpu = info.server, info.gpu
            need = s.gpus_per_node * gpu.tdp_w / 1000 + s.p_base_kw
            if need > s.p_max_kw * (1 + TOL):
                problems.append(
                    Problem(
                        file,
                        key,
                        f"server {rack.node_type}: {s.gpus_per_node} x {gpu.tdp_w:g} W GPUs "
                        f"+ {s.p_base_kw:g} kW base = {need:.2f} kW exceeds its p_max_kw {s.p_max_kw:g}; "
                        "expected the nameplate to cover the GPUs at TDP plus the base load",
                    )
                )
            if gpu.idle_w >= gpu.tdp_w:
                problems.append(
                    Problem(
                        file,
                        key,
                        f"GPU {s.gpu_type}: idle_w {gpu.idle_w:g} is not below tdp_w "
                        f"{gpu.tdp_w:g}; expected idle below TDP",
                    )
                )
        nodes_kw = rack.nodes_per_rack * (info.server.p_max_kw if info.server else 0.0)
        liquid = info.server.liquid_fraction_pu if info.server else 0.0
        air_kw = nodes_kw * (1 - liquid) + rack.p_it_max_kw
        if info.cdu is None and liquid > 0:
            # Cold plates need a CDU between them and facility water; a rear door takes only air heat.
            problems.append(
                Problem(
                    file,
                    key,
                    f"server {rack.node_type} puts {liquid:g} of its heat into cold plates, but the rack has no "
                    "cdu_type; expected a cdu_type (or a server with liquid_fraction_pu 0)",
                )
            )
        if info.cdu is not None:
            # Without a rear door, the rack's other IT (switch trays) is on the cold plates too.
            q_liquid = nodes_kw * liquid + (0.0 if info.rdhx is not None else rack.p_it_max_kw)
            if q_liquid > info.cdu.q_max_kw * (1 + TOL):
                problems.append(
                    Problem(
                        file,
                        key,
                        f"CDU {rack.cdu_type} takes {_kw(info.cdu.q_max_kw)} but the rack's "
                        f"cold plates carry {_kw(q_liquid)} ({rack.nodes_per_rack:g} x "
                        f"{info.server.p_max_kw:g} kW x liquid share {liquid:g}); expected a CDU "
                        "at least as large as the liquid heat",
                    )
                )
            for j in sorted(loops_of_template[info.hall_template]):
                loop = layout.equip.model[j]
                t_sec = loop.t_supply_c + info.cdu.approach_k
                if t_sec > info.cdu.t_secondary_max_c + TOL:
                    problems.append(
                        Problem(
                            file,
                            key,
                            f"loop '{loop.id}' supplies {loop.t_supply_c:g} °C; with the "
                            f"CDU approach of {info.cdu.approach_k:g} K the rack coolant reaches "
                            f"{t_sec:g} °C, above {rack.cdu_type}'s limit of "
                            f"{info.cdu.t_secondary_max_c:g} °C; expected a colder loop",
                        )
                    )
        if info.rdhx is not None and air_kw > info.rdhx.q_max_kw * (1 + TOL):
            problems.append(
                Problem(
                    file,
                    key,
                    f"rear door {rack.rdhx_type} takes {_kw(info.rdhx.q_max_kw)} but the "
                    f"rack puts {_kw(air_kw)} into air; expected a door at least as large",
                )
            )
    return problems


# ------------------------------------------------------------------------------------ tier 3


def _ratio_problem(
    layout, file, sel: np.ndarray, load: np.ndarray, rating: np.ndarray, what: str, limit: float, expect: str
) -> list[Problem]:
    """Group over-limit equipment by key; one problem per key naming the worst unit."""
    w = _where(layout)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rating > 0, load / rating, np.inf)
    bad = sel & (ratio > limit * (1 + TOL))
    by_key: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(bad):
        by_key[w.eq_key[i]].append(int(i))
    out = []
    for key, members in by_key.items():
        worst = max(members, key=lambda i: ratio[i])
        n_key = sum(1 for k in w.eq_key if k == key) if key.startswith("halls") else 1
        head = f"{len(members)} of {n_key} units exceed their rating; worst " if n_key > 1 else ""
        out.append(
            Problem(
                file,
                key,
                f"{head}{w.label(layout, worst)} rated {_kw(rating[worst])} {what} "
                f"{_kw(load[worst])}: ratio {ratio[worst]:.3f} > {limit:.3f}; {expect}",
            )
        )
    return out


def check_capacity_chain(layout: SiteLayout, file: str) -> list[Problem]:
    """At every conversion stage: nameplate below <= p_max_kw x oversubscription_pu."""
    over = layout.site.oversubscription_pu
    return _ratio_problem(
        layout,
        file,
        layout.load_side,
        layout.nameplate_below_kw,
        layout.p_max_kw,
        "carries a nameplate below it of",
        over,
        f"expected nameplate below <= rating x oversubscription_pu ({over:g})",
    )


def heat_served_kw(layout: SiteLayout) -> np.ndarray:
    """Heat each cooling equipment takes at nameplate: racks into loops, loops into chillers, chillers'
    condenser heat (load + compressor work at the rated COP) into towers and dry coolers."""
    n = len(layout.equip.ids)
    heat = np.zeros(n)
    r = layout.racks
    has_loop = r.loop >= 0
    heat += np.bincount(r.loop[has_loop], weights=r.p_max_kw[has_loop], minlength=n)
    A = layout.cooling_incidence  # child x parent, share of the child's heat
    g = _equipment_graph(layout, layout.equip.cooling_parents)
    order = [layout.index[e] for e in nx.topological_sort(g.reverse(copy=False))]  # children before parents
    for i in order:
        out = heat[i]
        m = layout.equip.model[i]
        if isinstance(m, Chiller) and m.condenser == "water":
            out = heat[i] * (1 + 1 / m.cop_rated)
        lo, hi = A.indptr[i], A.indptr[i + 1]
        heat[A.indices[lo:hi]] += out * A.data[lo:hi]
    return heat


def check_cooling_capacity(layout: SiteLayout, file: str) -> list[Problem]:
    """Facility loops and heat rejection carry the heat of what they serve (rack nameplate as heat)."""
    over = layout.site.oversubscription_pu
    heat = heat_served_kw(layout)
    sel = np.isin(layout.kind_array, COOLING_KINDS)
    return _ratio_problem(
        layout,
        file,
        sel,
        heat,
        layout.q_max_kw,
        "takes heat at nameplate of",
        over,
        f"expected heat <= q_max_kw x oversubscription_pu ({over:g})",
    )


def site_nameplate_kw(layout: SiteLayout) -> float:
    """Rack nameplate plus the electrical rating of the powered cooling plant."""
    return float(layout.racks.p_max_kw.sum() + layout.consumer_p_max_kw.sum())


def check_source_adequacy(layout: SiteLayout, file: str) -> list[Problem]:
    """Grid, turbines and batteries together cover the site nameplate / oversubscription_pu."""
    over = layout.site.oversubscription_pu
    total = site_nameplate_kw(layout)
    by_kind = {k: float(layout.p_max_kw[layout.of_kind(k)].sum()) for k in SOURCE_KINDS}
    have = sum(by_kind.values())
    need = total / over
    if have + TOL >= need:
        return []
    parts = ", ".join(f"{k} {v / 1000:,.1f} MW" for k, v in by_kind.items())
    return [
        Problem(
            file,
            "components",
            f"sources total {have / 1000:,.1f} MW ({parts}) against {total / 1000:,.1f} MW "
            f"of nameplate / oversubscription_pu {over:g} = {need / 1000:,.1f} MW: short by "
            f"{(need - have) / 1000:,.1f} MW; expected sources at least equal to that",
        )
    ]


def check_redundancy(layout: SiteLayout, file: str) -> list[Problem]:
    """Declared N+1 and 2N hold on the graph (see the module docstring for what each means)."""
    w = _where(layout)
    site = layout.site
    over = site.oversubscription_pu
    below = layout.nameplate_below_kw
    rating = layout.p_max_kw
    heat = heat_served_kw(layout)
    total = site_nameplate_kw(layout)
    sources_kw = float(rating[layout.sources].sum())
    problems = []
    for i, c in enumerate(site.components):
        key = f"components[{i}]"
        if c.redundancy == "N+1":
            if c.kind == "facility_loop":
                if c.pump_count < 2:
                    problems.append(
                        Problem(
                            file,
                            f"{key}.pump_count",
                            f"facility loop '{c.id}' declares N+1 with "
                            f"{c.pump_count} pump; expected pump_count >= 2",
                        )
                    )
                continue
            if c.count < 2:
                problems.append(
                    Problem(
                        file,
                        f"{key}.count",
                        f"{c.kind} '{c.id}' declares N+1 with count {c.count}; expected at least 2 units",
                    )
                )
                continue
            if c.kind in SOURCE_KINDS:
                unit = c.p_max_kw / c.count
                left = sources_kw - unit
                if left * over + TOL < total:
                    problems.append(
                        Problem(
                            file,
                            f"{key}.redundancy",
                            f"N+1: losing one {c.kind} unit of '{c.id}' "
                            f"({_kw(unit)}) leaves {_kw(left)} of sources for {_kw(total)} of nameplate "
                            f"(oversubscription_pu {over:g}); expected the rest to cover it",
                        )
                    )
            elif c.kind in CONVERSION_KINDS:
                left = c.p_max_kw * (c.count - 1) / c.count
                if left * over + TOL < below[i]:
                    problems.append(
                        Problem(
                            file,
                            f"{key}.redundancy",
                            f"N+1: {c.count - 1} of {c.count} units of "
                            f"{c.kind} '{c.id}' give {_kw(left)}, short of the {_kw(below[i])} of "
                            f"nameplate below (oversubscription_pu {over:g}); expected count - 1 units "
                            "to carry it",
                        )
                    )
            elif c.kind in HEAT_REJECTION_KINDS:
                left = c.q_max_kw * (c.count - 1) / c.count
                if left * over + TOL < heat[i]:
                    problems.append(
                        Problem(
                            file,
                            f"{key}.redundancy",
                            f"N+1: {c.count - 1} of {c.count} units of "
                            f"{c.kind} '{c.id}' reject {_kw(left)}, short of the {_kw(heat[i])} of heat "
                            f"they serve (oversubscription_pu {over:g}); expected count - 1 units to "
                            "carry it",
                        )
                    )
        elif c.redundancy == "2N":
            refs = list(dict.fromkeys(c.fed_by))
            if len(refs) < 2:
                problems.append(
                    Problem(
                        file,
                        f"{key}.fed_by",
                        f"{c.kind} '{c.id}' declares 2N with "
                        f"{len(refs)} fed_by; expected at least 2 independent feeds",
                    )
                )
                continue
            k = len(refs)
            for ref in refs:
                j = layout.index.get(ref)
                if j is None or not layout.load_side[j]:
                    continue
                need = below[j] + below[i] * (1 - 1 / k)
                if rating[j] * over + TOL < need:
                    problems.append(
                        Problem(
                            file,
                            f"{key}.fed_by",
                            f"2N: with its partner feeds lost, "
                            f"{w.label(layout, j)} rated {_kw(rating[j])} would carry {_kw(need)} "
                            f"(oversubscription_pu {over:g}); expected each feed to carry '{c.id}' "
                            "alone",
                        )
                    )
    problems += _hall_redundancy(layout, file)
    return problems


def _hall_redundancy(layout: SiteLayout, file: str) -> list[Problem]:
    w = _where(layout)
    site = layout.site
    over = site.oversubscription_pu
    below = layout.nameplate_below_kw
    rating = layout.p_max_kw
    idx = layout.index
    problems: list[Problem] = []
    extra = np.zeros(len(rating))  # 2N: load a feed takes on when the other side fails
    halls_2n: dict[int, list[int]] = defaultdict(list)  # feed -> hall instances it backs up
    reported = set()
    for t, k, d, start, units, per_parent in w.level_ranges:
        hall = site.halls[t]
        level = hall.distribution[d]
        h = int(np.flatnonzero(w.hall_template == t)[k])
        if d == 0:
            feeds = [f for f in dict.fromkeys(w.hall_feeds[h]) if f in idx]
            hall_kw = float(below[start : start + units].sum())
            if hall.redundancy in ("2N", "N+1") and len(feeds) < 2:
                if (t, "feeds") not in reported:
                    reported.add((t, "feeds"))
                    problems.append(
                        Problem(
                            file,
                            f"halls[{t}].fed_by",
                            f"{layout.hall_ids[h]} declares "
                            f"{hall.redundancy} with {len(feeds)} feed; expected at least 2 feeds",
                        )
                    )
            elif hall.redundancy == "2N":
                for f in feeds:
                    extra[idx[f]] += hall_kw * (1 - 1 / len(feeds))
                    halls_2n[idx[f]].append(h)
            elif hall.redundancy == "N+1":
                share = defaultdict(float)  # first-level units go round-robin over the feeds
                for u in range(units):
                    share[w.hall_feeds[h][u % len(w.hall_feeds[h])]] += below[start + u]
                for lost, lost_kw in share.items():
                    spare = sum(max(rating[idx[f]] * over - below[idx[f]], 0.0) for f in feeds if f != lost)
                    if spare + TOL < lost_kw and (t, "n+1") not in reported:
                        reported.add((t, "n+1"))
                        problems.append(
                            Problem(
                                file,
                                f"halls[{t}].redundancy",
                                f"N+1: losing feed '{lost}' of "
                                f"{layout.hall_ids[h]} drops {_kw(lost_kw)}; the other feeds have "
                                f"{_kw(spare)} spare (oversubscription_pu {over:g}); expected the "
                                "rest to take it",
                            )
                        )
        if level.redundancy == "N+1":
            if per_parent < 2:
                if (t, d) not in reported:
                    reported.add((t, d))
                    problems.append(
                        Problem(
                            file,
                            f"halls[{t}].distribution[{d}].count",
                            f"level declares N+1 with {per_parent} unit per parent; expected count >= 2",
                        )
                    )
                continue
            group_kw = below[start : start + units].reshape(-1, per_parent).sum(axis=1)
            unit_kw = rating[start]
            left = (per_parent - 1) * unit_kw * over
            short = group_kw > left + TOL
            if short.any() and (t, d) not in reported:
                reported.add((t, d))
                worst = int(np.argmax(group_kw))
                problems.append(
                    Problem(
                        file,
                        f"halls[{t}].distribution[{d}].redundancy",
                        f"N+1: "
                        f"{int(short.sum())} groups of {per_parent} {level.kind} units in "
                        f"{layout.hall_ids[h]} carry more than {per_parent - 1} units can (worst "
                        f"{_kw(group_kw[worst])} on {_kw((per_parent - 1) * unit_kw)}, "
                        f"oversubscription_pu {over:g}); expected count - 1 units to carry each group",
                    )
                )
        elif level.redundancy == "2N" and not (d == 0 and hall.redundancy == "2N") and (t, d) not in reported:
            reported.add((t, d))
            problems.append(
                Problem(
                    file,
                    f"halls[{t}].distribution[{d}].redundancy",
                    "2N is declared but each unit "
                    "of this level has one feed; expected 2N on the hall (first level fed by every "
                    "hall feed) or N / N+1 here",
                )
            )
    for j in np.flatnonzero(extra):
        need = below[j] + extra[j]
        cap = rating[j] * over if layout.load_side[j] else rating[j]
        if cap + TOL < need:
            h = halls_2n[j][0]
            t = int(w.hall_template[h])
            problems.append(
                Problem(
                    file,
                    f"halls[{t}].fed_by",
                    f"2N: with the other side lost, {w.label(layout, j)} "
                    f"rated {_kw(rating[j])} would carry {_kw(need)} ({_ids([layout.hall_ids[x] for x in halls_2n[j]])} "
                    f"in full, oversubscription_pu {over:g}); expected each feed to carry its halls alone",
                )
            )
    return problems


# ------------------------------------------------------------------------------------ driver

STRUCTURE_CHECKS = (check_unique_ids, check_references, check_cycles)
PATH_CHECKS = (check_power_paths, check_cooling_paths, check_ranges)
CAPACITY_CHECKS = (check_capacity_chain, check_cooling_capacity, check_source_adequacy, check_redundancy)


def validate_site(site: Site, file: str, layout: SiteLayout | None = None) -> list[Problem]:
    """Run every check; returns every problem found (empty when the site is valid).

    The layout is expanded once (or taken from the caller) and shared by all checks.
    """
    problems = check_templates(site, file)
    if problems:
        return problems
    layout = layout if layout is not None else expand(site)
    for check in STRUCTURE_CHECKS:
        problems += check(layout, file)
    structural = bool(problems)
    for check in PATH_CHECKS:
        problems += check(layout, file)
    if not structural:
        for check in CAPACITY_CHECKS:
            problems += check(layout, file)
    return problems


__all__ = [
    "check_templates",
    "check_unique_ids",
    "check_references",
    "check_cycles",
    "check_power_paths",
    "check_cooling_paths",
    "check_ranges",
    "check_capacity_chain",
    "check_cooling_capacity",
    "check_source_adequacy",
    "check_redundancy",
    "heat_served_kw",
    "site_nameplate_kw",
    "validate_site",
]

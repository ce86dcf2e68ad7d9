"""Load a site: YAML (safe loader) -> catalog types merged with overrides -> validated, frozen Site."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from twin.catalog import Catalog, load_catalog
from twin.errors import InputError, Problem
from twin.paths import sites_dir
from twin.schema.components import CATALOG_KINDS, DISTRIBUTION_KINDS, SITE_COMPONENTS, Component
from twin.schema.site import Hall, Location, Parts, RackGroup, Site
from twin.yamlio import problems_from_validation, read_yaml

_TAGS = frozenset(CATALOG_KINDS)
# Fields of a rack group itself; every other key of a group overrides the catalog rack.
_GROUP_KEYS = {"type", "count", "nodes", "source", "confidence", "notes"}
# Which catalog kind each part reference points at.
_PART_REFS = {("rack", "node_type"): "server", ("rack", "cdu_type"): "cdu", ("rack", "rdhx_type"): "rdhx",
              ("server", "gpu_type"): "gpu", ("server", "psu_type"): "psu", ("facility_loop", "pump_type"): "pump"}
_ABBR = {"transformer": "tx", "switchgear": "sw", "busway": "bw", "pdu": "pdu", "ups": "ups"}


def site_names() -> list[str]:
    return sorted(p.stem for p in sites_dir().glob("*.yaml"))


def site_path(name_or_path: str | Path) -> Path:
    """A site name from sites/ or a path to a YAML file."""
    p = Path(name_or_path)
    if p.exists():
        return p
    if p.suffix in (".yaml", ".yml"):
        # A shipped site's file name given from another folder is the usual slip: name the fix.
        hint = (f"; the shipped site is named '{p.stem}' (no folder, no .yaml)"
                if p.parent == Path(".") and (sites_dir() / f"{p.stem}.yaml").exists() else "")
        raise InputError.one(p, "", f"file not found{hint}; expected a path to a site YAML file or one of the "
                                    f"shipped sites: {', '.join(site_names())}")
    candidate = sites_dir() / f"{name_or_path}.yaml"
    if not candidate.exists():
        raise InputError.one(str(name_or_path), "", f"unknown site; expected a file path or one of: {', '.join(site_names())}")
    return candidate


def load_site(name_or_path: str | Path, catalog: Catalog | None = None, validate: bool = True) -> Site:
    """Load, resolve and validate a site. Raises InputError listing every problem found."""
    path = site_path(name_or_path)
    raw = read_yaml(path)
    site = parse_site(raw, str(path), catalog or load_catalog())
    if validate:
        from twin.validate import validate_site

        problems = validate_site(site, file=str(path))
        if problems:
            raise InputError(problems)
    return site


def parse_site(raw: Any, file: str, catalog: Catalog) -> Site:
    if not isinstance(raw, dict):
        raise InputError.one(file, "", f"expected a mapping at the top of the site file, got {type(raw).__name__}")
    problems: list[Problem] = []
    models_at: dict[str, type] = {"": Site, "location": Location}
    data = dict(raw)

    comps = data.get("components")
    if isinstance(comps, list):
        data["components"] = [
            _resolve(c, f"components[{i}]", SITE_COMPONENTS, catalog, file, problems, models_at)
            for i, c in enumerate(comps)
        ]
    halls = data.get("halls")
    if isinstance(halls, list):
        data["halls"] = [_resolve_hall(h, f"halls[{i}]", catalog, file, problems, models_at) for i, h in enumerate(halls)]
    if "parts" in data:
        problems.append(Problem(file, "parts", "parts are filled from the catalog; remove this key"))
    data["parts"] = _parts(data, catalog, file, problems)
    if problems:
        raise InputError(problems)
    try:
        return Site.model_validate(data)
    except ValidationError as exc:
        raise InputError(problems_from_validation(file, exc, _TAGS, models_at)) from None


def _unknown_type(catalog: Catalog, kind: str, name, file: str, key: str) -> Problem:
    known = ", ".join(catalog.names(kind)) or "(none)"
    return Problem(file, key, f"unknown catalog type {name!r} for kind {kind}; expected one of: {known}")


def _resolve(item, key, kinds, catalog, file, problems, models_at, default_id=None):
    """Merge a component's catalog type under its own fields (own fields win)."""
    if not isinstance(item, dict):
        problems.append(Problem(file, key, f"expected a mapping, got {type(item).__name__}"))
        return item
    kind = item.get("kind")
    if kind not in kinds:
        problems.append(Problem(file, f"{key}.kind", f"unknown kind {kind!r}; expected one of: {', '.join(sorted(kinds))}"))
        return item
    models_at[key] = kinds[kind]
    merged = {}
    type_name = item.get("type")
    if type_name is not None:
        if not catalog.has(kind, type_name):
            problems.append(_unknown_type(catalog, kind, type_name, file, f"{key}.type"))
        else:
            # The catalog entry's fields, its source and confidence included, are the defaults; the
            # component's own keys (a site-specific source too) override them below.
            merged.update(catalog.raw(kind, type_name))
    merged.update(item)
    if default_id is not None:
        merged.setdefault("id", default_id)
    return merged


def _resolve_hall(hall, key, catalog, file, problems, models_at):
    if not isinstance(hall, dict):
        problems.append(Problem(file, key, f"expected a mapping, got {type(hall).__name__}"))
        return hall
    models_at[key] = Hall
    out = dict(hall)
    levels = hall.get("distribution")
    if isinstance(levels, list):
        out["distribution"] = [
            _resolve(lv, f"{key}.distribution[{j}]", DISTRIBUTION_KINDS, catalog, file, problems, models_at,
                     default_id="{parent}-" + _ABBR.get(lv.get("kind", ""), "u") + "{i}" if isinstance(lv, dict) else None)
            for j, lv in enumerate(levels)
        ]
    groups = hall.get("racks")
    if isinstance(groups, list):
        out["racks"] = [_resolve_group(g, f"{key}.racks[{j}]", catalog, file, problems, models_at)
                        for j, g in enumerate(groups)]
    return out


def _resolve_group(group, key, catalog, file, problems, models_at):
    if not isinstance(group, dict):
        problems.append(Problem(file, key, f"expected a mapping, got {type(group).__name__}"))
        return group
    models_at[key] = RackGroup
    own = {k: v for k, v in group.items() if k in _GROUP_KEYS}
    overrides = {k: v for k, v in group.items() if k not in _GROUP_KEYS}
    rack_type = group.get("type")
    if rack_type is None:
        problems.append(Problem(file, f"{key}.type", "missing: a rack group needs a catalog rack type"))
        return own
    if not catalog.has("rack", rack_type):
        problems.append(_unknown_type(catalog, "rack", rack_type, file, f"{key}.type"))
        return own
    rack = {**catalog.raw("rack", rack_type), **overrides}
    models_at[f"{key}.rack"] = CATALOG_KINDS["rack"]
    return {**own, "rack": rack}


def _parts(data, catalog, file, problems) -> dict:
    """Collect the servers, GPUs, PSUs, CDUs, doors and pumps the site refers to, from the catalog."""
    parts: dict[str, dict[str, Any]] = {k: {} for k in Parts.model_fields}

    def need(kind, name, where):
        if name is None or (isinstance(name, str) and name in parts[kind]):
            return
        if not catalog.has(kind, name):
            problems.append(_unknown_type(catalog, kind, name, file, where))
            return
        entry = catalog.raw(kind, name)
        parts[kind][name] = {**entry, "kind": kind}
        if issubclass(CATALOG_KINDS[kind], Component):  # PSUs share the curve model of site stages
            parts[kind][name]["id"] = name
        for (owner, field), target in _PART_REFS.items():
            if owner == kind:
                need(target, entry.get(field), f"{where} -> {kind} {name}.{field}")

    for i, hall in enumerate(data.get("halls") or []):
        for j, group in enumerate((hall or {}).get("racks") or [] if isinstance(hall, dict) else []):
            rack = group.get("rack") if isinstance(group, dict) else None
            if not isinstance(rack, dict):
                continue
            for (owner, field), target in _PART_REFS.items():
                if owner == "rack":
                    need(target, rack.get(field), f"halls[{i}].racks[{j}].{field}")
    for i, comp in enumerate(data.get("components") or []):
        if isinstance(comp, dict) and comp.get("kind") == "facility_loop":
            need("pump", comp.get("pump_type"), f"components[{i}].pump_type")
    return parts

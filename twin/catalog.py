"""The equipment catalog: standard types by name, one YAML file per kind in data/catalog/.

A file maps type names to partial components of its kind. Entries are validated against the
kind's schema on load, so a bad catalog is caught before any site uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from twin.errors import InputError, Problem
from twin.paths import catalog_dir
from twin.schema.components import CATALOG_KINDS, Component
from twin.yamlio import problems_from_validation, read_yaml

_KIND_TAGS = frozenset(CATALOG_KINDS)


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, dict[str, dict[str, Any]]]  # kind -> type name -> raw fields
    files: dict[str, Path]  # kind -> file it came from

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries.get(kind, {}))

    def raw(self, kind: str, name: str) -> dict[str, Any]:
        return self.entries[kind][name]

    def has(self, kind: str, name) -> bool:
        # A YAML list or mapping where a type name belongs is unhashable: it is simply not a known type.
        return isinstance(name, str) and name in self.entries.get(kind, {})

    def get(self, kind: str, name: str):
        """The validated model of one catalog entry."""
        return build(kind, self.raw(kind, name), str(self.files[kind]), f"{name}")


def build(kind: str, fields: dict[str, Any], file: str, key: str):
    """Validate `fields` as a component of `kind`; site components get a placeholder id if missing."""
    cls = CATALOG_KINDS[kind]
    data = dict(fields)
    if issubclass(cls, Component):
        data.setdefault("id", key)
    data.setdefault("kind", kind)
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        probs = problems_from_validation(file, exc, _KIND_TAGS, {"": cls})
        raise InputError([Problem(p.file, f"{key}.{p.key}" if p.key else key, p.message) for p in probs]) from None


def load_catalog(directory: Path | None = None) -> Catalog:
    directory = Path(directory) if directory else catalog_dir()
    return _load(directory.resolve())


@cache
def _load(directory: Path) -> Catalog:
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    files: dict[str, Path] = {}
    problems: list[Problem] = []
    for path in sorted(directory.glob("*.yaml")):
        kind = path.stem
        if kind not in CATALOG_KINDS:
            problems.append(Problem(str(path), "", f"unknown catalog kind '{kind}'; expected one of {sorted(CATALOG_KINDS)}"))
            continue
        data = read_yaml(path) or {}
        if not isinstance(data, dict):
            problems.append(Problem(str(path), "", "expected a mapping of type names to entries"))
            continue
        for name, fields in data.items():
            if not isinstance(fields, dict):
                problems.append(Problem(str(path), str(name), "expected a mapping of fields"))
                continue
            if not fields.get("source"):
                problems.append(Problem(str(path), f"{name}.source", "every catalog entry needs a source"))
            try:
                build(kind, fields, str(path), str(name))
            except InputError as exc:
                problems.extend(exc.problems)
        entries[kind] = {str(k): v for k, v in data.items()}
        files[kind] = path
    if problems:
        raise InputError(problems)
    return Catalog(entries, files)

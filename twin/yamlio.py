"""Safe YAML reading and pydantic error translation: every problem names file, key path and expectation."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from twin.errors import InputError, Problem


def read_yaml(path: Path) -> Any:
    """Load one YAML file with the safe loader; bad syntax becomes an InputError with the line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError.one(path, "", "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError.one(path, "", f"cannot read file: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc)
        raise InputError.one(path, where, f"invalid YAML: {what}") from None


def key_path(loc: tuple, tags: frozenset[str] = frozenset()) -> str:
    """('halls', 0, 'racks', 1, 'count') -> 'halls[0].racks[1].count'; drops union tags like 'transformer'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tags or part.startswith("function-"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _field_names(model: type[BaseModel] | None) -> list[str]:
    return list(model.model_fields) if model is not None else []


def problems_from_validation(
    file: str, exc: ValidationError, tags: frozenset[str], models_at: dict[str, type[BaseModel]] | None = None
) -> list[Problem]:
    """Turn a pydantic ValidationError into Problems; unknown keys get a 'did you mean' with units."""
    problems = []
    errors = exc.errors()
    for err in errors:
        loc = err["loc"]
        # A list whose items failed is also reported "too short"; the item errors say what is wrong.
        if err["type"] == "too_short" and any(len(e["loc"]) > len(loc) and e["loc"][:len(loc)] == loc for e in errors):
            continue
        path = key_path(loc, tags)
        if err["type"] == "extra_forbidden":
            parent = key_path(loc[:-1], tags)
            known = _field_names((models_at or {}).get(parent))
            hint = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.5)
            msg = f"unknown key '{loc[-1]}'"
            if hint:
                msg += f"; did you mean '{hint[0]}'?"
                if hint[0].rsplit("_", 1)[0] == str(loc[-1]).rsplit("_", 1)[0]:  # only the unit suffix differs
                    msg += " (the unit is part of the key name)"
            elif known:
                msg += f"; expected one of: {', '.join(sorted(known))}"
            problems.append(Problem(file, path, msg))
            continue
        value = err.get("input")
        shown = "" if isinstance(value, dict | list) or value is None else f" (got {value!r})"
        msg = err["msg"].replace("Value error, ", "")
        problems.append(Problem(file, path, f"{msg}{shown}"))
    return problems

"""Where the shipped `sites/` and `data/` folders are, in a source tree and after `pip install .`."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def _find(name: str) -> Path:
    # Source tree / editable install: the folder sits beside the package at the repo root.
    # (pyproject.toml beside it rules out a stray site-packages/data of another package).
    in_repo = _PACKAGE_DIR.parent / name
    if in_repo.is_dir() and (_PACKAGE_DIR.parent / "pyproject.toml").is_file():
        return in_repo
    # Wheel install: hatch force-includes the folder under twin/_bundled/.
    return _PACKAGE_DIR / "_bundled" / name


def data_dir() -> Path:
    return _find("data")


def sites_dir() -> Path:
    return _find("sites")


def catalog_dir() -> Path:
    return data_dir() / "catalog"

"""sites/ and data/ must ship inside the wheel, so a plain `pip install .` finds them."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_wheel_carries_sites_and_data(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True,
    )
    (wheel,) = tmp_path.glob("gigatwin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped_sites = {p.name for p in (REPO / "sites").glob("*.yaml")}
    assert shipped_sites, "no sites in the repository"
    for name in shipped_sites:
        assert f"twin/_bundled/sites/{name}" in names
    for cat in (REPO / "data" / "catalog").glob("*.yaml"):
        assert f"twin/_bundled/data/catalog/{cat.name}" in names
    assert "twin/cli/__init__.py" in names and "optimizers/__init__.py" in names

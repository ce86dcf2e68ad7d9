"""gigatwin: a digital twin of AI gigafactories of compute.

Public API::

    import twin
    site = twin.load_site("colossus-1")
    sc = twin.load_scenario("scenarios/colossus-1-year.yaml")
    ds = twin.simulate(sc.site, sc)        # xarray.Dataset; ds.twin.kpis(), ds.twin.pue()
"""

from __future__ import annotations

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("gigatwin")
except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
    __version__ = "0.1.0"


def load_site(name_or_path, *args, **kwargs):
    """Load and validate a site (name in sites/ or a YAML path); see twin.site.load_site."""
    from twin.site import load_site as _load_site

    return _load_site(name_or_path, *args, **kwargs)


def load_scenario(path, check: bool = True):
    """Load a scenario YAML; see twin.schema.scenario.load_scenario."""
    from twin.schema.scenario import load_scenario as _load_scenario

    return _load_scenario(path, check=check)


def simulate(site=None, scenario=None, **kwargs):
    """Simulate a scenario on a site; see twin.sim.engine.simulate. Registers the `ds.twin` accessor."""
    import twin.accessor  # noqa: F401
    from twin.sim.engine import simulate as _simulate

    return _simulate(site, scenario, **kwargs)


__all__ = ["__version__", "load_site", "load_scenario", "simulate"]

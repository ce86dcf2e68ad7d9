"""`ds.twin`: domain helpers on a simulation Dataset (registered on import of twin.accessor / twin.simulate)."""

from __future__ import annotations

import json

import pandas as pd
import xarray as xr

from twin.kpi import summary


@xr.register_dataset_accessor("twin")
class TwinAccessor:
    def __init__(self, ds: xr.Dataset):
        self._ds = ds

    def pue(self) -> float:
        """Energy-weighted PUE of the run."""
        return summary.pue(self._ds)

    def pue_hourly(self) -> xr.DataArray:
        return summary.pue_hourly(self._ds)

    def kpis(self, n1: bool = False) -> dict:
        return summary.kpis(self._ds, n1=n1)

    def energy_by_carrier(self) -> dict[str, float]:
        """MWh from the grid, turbines and battery, and facility / IT / cooling / losses."""
        return summary.energy_by_carrier_mwh(self._ds)

    def headroom(self) -> pd.DataFrame:
        return summary.equipment_headroom(self._ds)

    def n1(self) -> pd.DataFrame:
        from twin.sim.n1 import n1_from_result

        return n1_from_result(self._ds)

    def scenario(self) -> dict:
        return json.loads(self._ds.attrs["scenario"])

    def final_state(self) -> dict:
        """Battery SOC and turbines online at the end, for `simulate(..., initial_state=...)` of the next window."""
        return json.loads(self._ds.attrs["final_state"])

    def rack_series(self) -> xr.DataArray:
        """p_rack_kw on a dimension named `time` whatever the run's step (block means for sub-minute runs)."""
        da = self._ds["p_rack_kw"]
        return da.rename({"time_rack": "time"}) if "time_rack" in da.dims else da

    def balance_error_kw(self) -> xr.DataArray:
        """facility - (IT + losses + cooling - unserved): zero when power is conserved."""
        d = self._ds
        return d["p_facility_kw"] - (d["p_it_kw"] + d["p_loss_kw"] + d["p_cooling_kw"] - d["p_unserved_kw"])

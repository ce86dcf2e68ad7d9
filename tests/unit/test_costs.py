"""data/costs.yaml and optimizers/costs.py: the TOU tariff's off-peak blocks by hours use, by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from optimizers.costs import load_costs
from twin.errors import InputError
from twin.paths import data_dir

pytestmark = pytest.mark.unit

# Hartselle TOU MSB off-peak blocks (colossus.md §6) and the assumed 200 h / 200 h widths
P1, P2, P3 = 0.0547, 0.0237, 0.0210


@pytest.fixture(scope="module")
def tariff():
    return load_costs().tariff_tva_tou_proxy


def test_off_peak_effective_price_by_hand(tariff):
    assert tariff.off_peak_block_energy_usd_kwh == (P1, P2, P3)
    assert tariff.off_peak_block_hours_use_h == (200, 200)
    h = np.array([0.0, 100.0, 200.0, 300.0, 600.0])
    expect = [P1, P1, P1, (200 * P1 + 100 * P2) / 300, (200 * P1 + 200 * P2 + 200 * P3) / 600]
    np.testing.assert_allclose(tariff.off_peak_effective_usd_kwh(h), expect, rtol=1e-12)
    # 0.0443667 and 0.0331333 $/kWh written out, so a wrong formula cannot agree with itself
    assert float(tariff.off_peak_effective_usd_kwh(300.0)) == pytest.approx(0.0443667, abs=1e-7)
    assert float(tariff.off_peak_effective_usd_kwh(600.0)) == pytest.approx(0.0331333, abs=1e-7)
    np.testing.assert_allclose(tariff.off_peak_marginal_usd_kwh([0.0, 199.0, 200.0, 399.0, 400.0, 700.0]),
                               [P1, P1, P2, P2, P3, P3])


def test_above_400_hours_use_the_blocks_are_the_last_price_plus_a_demand_charge(tariff):
    # effective x hours use = cost per kW of demand = 0.0210 x H + 200 x (0.0547 - 0.0210) + 200 x (0.0237 - 0.0210)
    h = np.array([400.0, 500.0, 569.66, 744.0])
    cost_per_kw = tariff.off_peak_effective_usd_kwh(h) * h
    np.testing.assert_allclose(cost_per_kw - P3 * h, 7.28, rtol=1e-12)


def test_reference_site_pays_the_flat_off_peak_price(tariff):
    # 150 MW flat AI load at 0.95 load factor: off-peak hours per average month 730 x (1 - 6/24 x 5/7) = 599.64 h,
    # hours use 0.95 x 599.64 = 569.66 h -> (200 x 0.0547 + 200 x 0.0237 + 169.66 x 0.0210) / 569.66
    off_h = 730.0 * (1 - 6 / 24 * 5 / 7)
    assert tariff.off_peak_hours_month_h == pytest.approx(599.642857, abs=1e-6)
    h = 0.95 * off_h
    by_hand = (200 * P1 + 200 * P2 + (h - 400) * P3) / h
    assert by_hand == pytest.approx(0.033780, abs=1e-6)
    assert float(tariff.off_peak_effective_at_load_factor_usd_kwh(0.95)) == pytest.approx(by_hand, rel=1e-12)
    assert tariff.reference_load_factor_pu == 0.95
    assert tariff.off_peak_energy_usd_kwh == pytest.approx(by_hand, abs=5e-5)
    # a low load factor site stays in the first block
    assert float(tariff.off_peak_effective_at_load_factor_usd_kwh(0.3)) == pytest.approx(P1)
    # the flat TOU price series carries the effective off-peak price: Wed 2025-01-15 12:00 off, 13:00 on;
    # Sat 2025-01-18 13:00 off (weekend)
    t = np.array(["2025-01-15T12", "2025-01-15T13", "2025-01-18T13"], dtype="datetime64[h]")
    np.testing.assert_allclose(tariff.price_usd_kwh(t), [0.0338, 0.0808, 0.0338])


def test_monthly_bill_of_the_reference_site_by_hand(tariff):
    # 150 MW at 0.95: 104,025 MWh a month; on-peak share 6/24 x 5/7; demand at 12.38 $/kW-month.
    # 18,575.9 MWh x 80.8 + 85,449.1 MWh x 33.80 + 150,000 kW x 12.38 = 1.5009 + 2.8882 + 1.8570 = 6.2461 M$
    # (MLGW expected ~7 M$/month for xAI before its fuel cost adjustment, colossus.md §6)
    e_mwh = 150.0 * 0.95 * 730.0
    on_mwh = e_mwh * 6 / 24 * 5 / 7
    bill = (on_mwh * tariff.on_peak_energy_usd_kwh + (e_mwh - on_mwh) * tariff.off_peak_energy_usd_kwh) * 1000.0 \
        + 150_000.0 * tariff.demand_charge_usd_kw_month
    assert bill == pytest.approx(6.2461e6, rel=1e-4)


def _write(tmp_path: Path, edit) -> Path:
    raw = yaml.safe_load((data_dir() / "costs.yaml").read_text())
    edit(raw["tariff_tva_tou_proxy"])
    p = tmp_path / "costs.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_a_flat_off_peak_price_off_the_blocks_is_refused(tmp_path):
    p = _write(tmp_path, lambda t: t["off_peak_energy_usd_kwh"].update(value=0.0547))
    with pytest.raises(InputError) as e:
        load_costs(p)
    (prob,) = e.value.problems
    assert prob.file == str(p) and prob.key == "tariff_tva_tou_proxy.off_peak_energy_usd_kwh.value"
    assert "expected 0.0338" in prob.message and "reference load factor 0.95" in prob.message


def test_block_widths_must_match_the_prices(tmp_path):
    p = _write(tmp_path, lambda t: t["off_peak_block_hours_use_h"].update(value=[200]))
    with pytest.raises(InputError, match="off_peak_block_hours_use_h.value.*1 widths for 3 block prices"):
        load_costs(p)
    p = _write(tmp_path, lambda t: t["reference_load_factor_pu"].update(value=1.5))
    with pytest.raises(InputError, match="reference_load_factor_pu.value.*expected in"):
        load_costs(p)

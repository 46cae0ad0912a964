"""Wigner–Seitz vacancy tracking and jump-rate estimators on cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from hts_mlff.analysis.vacancy import jump_events, jump_rates, rate_estimates, window_jumps
from hts_mlff.engine import MDProtocol, run_md
from hts_mlff.engine.wigner_seitz import site_occupancy, vacant_site
from hts_mlff.forcefields import LennardJones
from tests.conftest import LIQUID_LATTICE_A, argon, batch


def test_wigner_seitz_finds_a_hand_placed_jump_under_thermal_noise():
    perfect = argon(a=5.3, repeat=3)
    sites = torch.as_tensor(perfect.positions)
    cell = torch.as_tensor(perfect.cell.array)
    rng = np.random.default_rng(0)
    lattice = perfect.positions.copy()
    occupied = list(range(1, len(lattice)))  # site 0 empty
    found = []
    for frame in range(10):
        if frame == 5:  # the atom on site 1 (a nearest neighbour of site 0) hops into the vacancy
            occupied[occupied.index(1)] = 0
        positions = lattice[occupied] + rng.normal(scale=0.15, size=(len(occupied), 3))
        positions += perfect.cell.array[0] * (frame % 2)  # any periodic image
        found.append(vacant_site(torch.as_tensor(positions), sites, cell))
    assert found == [(0, 1)] * 5 + [(1, 1)] * 5
    assert int(site_occupancy(torch.as_tensor(lattice), sites, cell).sum()) == len(lattice)


def test_jump_events_drop_immediate_recrossings_with_a_dwell():
    t = np.arange(10) * 100.0
    sites = np.array([3, 3, 7, 3, 3, 3, 7, 7, 7, -1])
    np.testing.assert_array_equal(jump_events(sites, t), [200.0, 300.0, 600.0])
    np.testing.assert_array_equal(jump_events(sites, t, min_dwell_samples=2), [600.0])


def test_md_records_the_vacancy_site_of_a_cold_crystal():
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    perfect = argon(a=LIQUID_LATTICE_A * 0.97, repeat=3)
    crystal = perfect.copy()
    del crystal[[13]]
    state = batch([crystal])
    protocol = MDProtocol(timestep_fs=10.0, production_steps=60, sample_every_steps=20)
    fractional = torch.as_tensor(perfect.get_scaled_positions())
    result = run_md(
        state,
        lj,
        protocol=protocol,
        temperature_K=torch.tensor([20.0]),
        pressure_bar=torch.zeros(1),
        keys=[3],
        vacancy_sites=[fractional],
    )
    assert result.vacancy_site.tolist() == [[13, 13, 13, 13]]
    assert result.n_vacant.tolist() == [[1, 1, 1, 1]]


def test_rate_estimators_cover_the_true_rate_in_at_least_90_percent_of_draws():
    rate_per_ps, window_fs, n_windows = 0.02, 40_000.0, 60  # mean waiting time 50 ps, windows 40 ps
    rng = np.random.default_rng(42)
    covered, covered_all, estimates = 0, 0, []
    draws = 100
    for _ in range(draws):
        gaps = rng.exponential(1000.0 / rate_per_ps, size=(n_windows, 20))
        times = np.cumsum(gaps, axis=1)
        n_jumps = (times < window_fs).sum(axis=1)
        first = np.where(times[:, 0] < window_fs, times[:, 0], np.nan)
        out = rate_estimates(
            first, np.full(n_windows, window_fs), n_jumps, n_bootstrap=300, seed=int(rng.integers(1e9))
        )
        covered += out["rate_low_per_ps"] <= rate_per_ps <= out["rate_high_per_ps"]
        covered_all += out["rate_all_low_per_ps"] <= rate_per_ps <= out["rate_all_high_per_ps"]
        estimates.append(out["rate_survival_fit_per_ps"])
    assert covered >= 0.9 * draws and covered_all >= 0.9 * draws
    assert np.nanmean(estimates) == pytest.approx(rate_per_ps, rel=0.1)


def test_jump_rates_per_group_from_a_store_like_dataset():
    time = np.arange(6) * 1000.0
    sites = np.array(
        [
            [0, 0, 5, 5, 5, 5],  # jump at 2 ps
            [0, 0, 0, 0, 0, 0],  # censored at 5 ps
            [0, 4, 4, 9, 9, -1],  # jumps at 1 and 3 ps, tracked for 4 ps
            [2, 2, 2, 2, 2, 2],
        ]
    )
    index = pd.MultiIndex.from_arrays(
        [["lj"] * 4, ["ar"] * 4, [40.0, 40.0, 50.0, 50.0], [0.0] * 4, [0, 1, 0, 1], [0] * 4],
        names=["forcefield", "system", "temperature_K", "pressure_bar", "seed", "window"],
    )
    ds = xr.Dataset(
        {"vacancy_site": (("traj", "time_fs"), sites)},
        coords={**xr.Coordinates.from_pandas_multiindex(index, "traj"), "time_fs": time},
    )
    windows = window_jumps(ds)
    assert windows["n_jumps"].values.tolist() == [1, 0, 2, 0]
    np.testing.assert_array_equal(windows["observed_fs"].values, [5000.0, 5000.0, 4000.0, 5000.0])
    rates = jump_rates(windows, n_bootstrap=50)
    at_40 = rates.sel(forcefield="lj", temperature_K=40.0, pressure_bar=0.0)
    assert float(at_40["rate_mle_per_ps"]) == pytest.approx(1 / (2.0 + 5.0))  # 1 event / 7 ps exposure
    at_50 = rates.sel(forcefield="lj", temperature_K=50.0, pressure_bar=0.0)
    assert float(at_50["rate_all_jumps_per_ps"]) == pytest.approx(2 / 9.0)


def test_a_campaign_with_vacancy_tracking_stores_the_site_per_sample(tmp_path, dask_client):
    import hts_mlff

    (tmp_path / "vac.yaml").write_text(
        """\
name: vac
store: vac.zarr
systems:
  ar107: {kind: fcc, element: Ar, lattice_A: 5.3, repeat: [3, 3, 3], vacancies: [13]}
forcefields:
  lj: {kind: lennard_jones, epsilon_eV: 0.010327, sigma_A: 3.405, cutoff_A: 8.5}
protocol: {timestep_fs: 10.0, equilibration_steps: 20, production_steps: 60, sample_every_steps: 20}
sweep: {temperature_K: [20], seed: [0], window: [0, 1]}
analyses: [thermo, vacancy]
cluster: {kind: local, dashboard_address: ":0"}
"""
    )
    hts_mlff.run_campaign(hts_mlff.load_campaign(tmp_path / "vac.yaml"), client=dask_client)
    ds = hts_mlff.open_campaign(tmp_path / "vac.zarr")
    assert (ds["vacancy_site"].values == 13).all() and (ds["n_vacant"].values == 1).all()
    windows = window_jumps(ds)
    assert windows["n_jumps"].values.tolist() == [0, 0]

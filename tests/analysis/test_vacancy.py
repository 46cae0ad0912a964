"""Wigner–Seitz vacancy tracking and jump-rate estimators on cases with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from hts_mlff.analysis.vacancy import jump_events, jump_rates, rate_estimates, window_jumps
from hts_mlff.engine import MDProtocol, run_md
from hts_mlff.engine.observers import VacancyObserver
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
        observers=[VacancyObserver([fractional])],
    )
    assert result["vacancy_site"].tolist() == [[13, 13, 13, 13]]
    assert result["n_vacant"].tolist() == [[1, 1, 1, 1]]


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


def _synthetic_rates(rng, *, barrier_eV, nu0_THz, temperatures, n_windows, window_fs, forcefields=("lj",)):
    """MLE rates of censored exponential first-jump times at r(T) = ν₀ exp(−E_b/k_B T)."""
    from hts_mlff.units import BOLTZMANN_EV_PER_K

    shape = (len(forcefields), len(temperatures), 1)
    mle, events = np.zeros(shape), np.zeros(shape)
    for f in range(len(forcefields)):
        for k, t in enumerate(temperatures):
            true_rate = nu0_THz * np.exp(-barrier_eV / (BOLTZMANN_EV_PER_K * t))  # 1/ps
            first = rng.exponential(1000.0 / true_rate, size=n_windows)
            jumped = first < window_fs
            events[f, k, 0] = jumped.sum()
            mle[f, k, 0] = jumped.sum() / np.where(jumped, first, window_fs).sum() * 1000.0
    coords = {"forcefield": list(forcefields), "temperature_K": temperatures, "pressure_bar": [-2500.0]}
    dims = ("forcefield", "temperature_K", "pressure_bar")
    return xr.Dataset({"rate_mle_per_ps": (dims, mle), "n_windows_with_jump": (dims, events)}, coords=coords)


def test_weighted_arrhenius_recovers_known_barrier_and_prefactor_inside_its_interval():
    from hts_mlff.analysis.vacancy import rate_arrhenius

    rng = np.random.default_rng(7)
    barrier, nu0 = 0.025, 2.0
    temperatures = [35.0, 38.0, 40.0, 45.0, 50.0, 55.0, 60.0]
    covered_barrier = covered_nu0 = 0
    draws = 200
    for _ in range(draws):
        rates = _synthetic_rates(
            rng, barrier_eV=barrier, nu0_THz=nu0, temperatures=temperatures, n_windows=80, window_fs=1e6
        )
        fit = rate_arrhenius(rates).sel(forcefield="lj", pressure_bar=-2500.0)
        covered_barrier += float(fit["activation_energy_low_eV"]) <= barrier <= float(fit["activation_energy_high_eV"])
        covered_nu0 += float(fit["prefactor_low"]) <= nu0 <= float(fit["prefactor_high"])
    assert covered_barrier >= 0.9 * draws and covered_nu0 >= 0.9 * draws
    # One big sample lands close to the truth.
    big = _synthetic_rates(
        rng, barrier_eV=barrier, nu0_THz=nu0, temperatures=temperatures, n_windows=20000, window_fs=1e6
    )
    fit = rate_arrhenius(big, debye_frequency_THz=1.92).sel(forcefield="lj", pressure_bar=-2500.0)
    assert float(fit["activation_energy_eV"]) == pytest.approx(barrier, rel=0.02)
    assert float(fit["prefactor"]) == pytest.approx(nu0, rel=0.1)
    assert float(fit["prefactor_over_debye"]) == pytest.approx(nu0 / 1.92, rel=0.1)
    assert int(fit["n_temperatures"]) == 7


def test_arrhenius_skips_temperatures_without_jumps_and_is_lazy(tmp_path):
    from hts_mlff.analysis.vacancy import plot_rate_arrhenius, rate_arrhenius

    rng = np.random.default_rng(1)
    rates = _synthetic_rates(
        rng,
        barrier_eV=0.025,
        nu0_THz=2.0,
        temperatures=[40.0, 50.0, 60.0],
        n_windows=50,
        window_fs=5e5,
        forcefields=("lj", "gnn"),
    )
    rates["rate_mle_per_ps"][1, 0, 0] = 0.0  # gnn: no jump at 40 K
    rates["n_windows_with_jump"][1, 0, 0] = 0.0
    lazy = rate_arrhenius(rates.chunk({"forcefield": 1}))
    assert lazy["activation_energy_eV"].chunks is not None
    fit = lazy.compute()
    assert fit["n_temperatures"].sel(forcefield="gnn").item() == 2
    assert np.isfinite(fit["activation_energy_eV"]).all()
    rates["rate_low_per_ps"] = rates["rate_mle_per_ps"] * 0.8
    rates["rate_high_per_ps"] = rates["rate_mle_per_ps"] * 1.2
    figure = plot_rate_arrhenius(rates, fit, str(tmp_path / "a.png"), reference="lj")
    assert (tmp_path / "a.png").stat().st_size > 0 and figure.endswith("a.png")


@pytest.mark.parametrize("dwell", [1, 2])
def test_lazy_window_reduction_equals_the_per_trajectory_loop(dwell):
    rng = np.random.default_rng(3)
    n_traj, n_samples = 40, 30
    sites = np.cumsum(rng.random((n_traj, n_samples)) < 0.15, axis=1) % 4  # random hops among 4 sites
    sites[rng.random((n_traj, n_samples)) < 0.1] = -1  # untracked samples
    sites[0] = -1  # never tracked
    sites[1, :5] = -1  # tracked late
    time = np.arange(n_samples) * 500.0
    index = pd.MultiIndex.from_arrays(
        [["lj"] * n_traj, [40.0] * n_traj, [0.0] * n_traj, np.arange(n_traj)],
        names=["forcefield", "temperature_K", "pressure_bar", "window"],
    )
    ds = xr.Dataset(
        {"vacancy_site": (("traj", "time_fs"), sites)},
        coords={**xr.Coordinates.from_pandas_multiindex(index, "traj"), "time_fs": time},
    ).chunk({"traj": 7})
    windows = window_jumps(ds, min_dwell_samples=dwell)
    assert windows["n_jumps"].chunks is not None
    windows = windows.compute()
    for k in range(n_traj):
        valid = np.flatnonzero(sites[k] >= 0)
        if len(valid) == 0:
            assert np.isnan(windows["observed_fs"].values[k]) and windows["n_jumps"].values[k] == 0
            continue
        events = jump_events(sites[k], time, min_dwell_samples=dwell) - time[valid[0]]
        assert windows["n_jumps"].values[k] == len(events)
        first = windows["first_jump_fs"].values[k]
        assert (np.isnan(first) and len(events) == 0) or first == events[0]
        assert windows["observed_fs"].values[k] == time[valid[-1]] - time[valid[0]]


def test_wigner_seitz_follows_a_rigid_drift_of_the_crystal():
    perfect = argon(a=5.3, repeat=3)
    sites = torch.as_tensor(perfect.positions)
    cell = torch.as_tensor(perfect.cell.array)
    rng = np.random.default_rng(5)
    nearest_neighbour = 5.3 / np.sqrt(2)
    drift = np.array([0.35, 0.2, -0.1]) * nearest_neighbour  # a third of the way to the next site
    positions = perfect.positions[1:] + drift + rng.normal(scale=0.15, size=(len(perfect) - 1, 3))
    assert vacant_site(torch.as_tensor(positions), sites, cell) == (0, 1)


def test_windows_end_where_the_crystal_loses_its_lattice():
    time = np.arange(6) * 1000.0
    index = pd.MultiIndex.from_arrays(
        [["lj"] * 2, [40.0] * 2, [0.0] * 2, [0, 1]], names=["forcefield", "temperature_K", "pressure_bar", "window"]
    )
    ds = xr.Dataset(
        {
            "vacancy_site": (("traj", "time_fs"), np.array([[0, 0, 5, 5, 9, 2], [0, 0, 0, 0, 0, 0]])),
            "n_vacant": (("traj", "time_fs"), np.array([[1, 1, 1, 1, 4, 1], [1, 1, 1, 1, 1, 1]])),
        },
        coords={**xr.Coordinates.from_pandas_multiindex(index, "traj"), "time_fs": time},
    )
    windows = window_jumps(ds)
    assert windows["n_jumps"].values.tolist() == [1, 0]  # the jumps at and after the disorder are not counted
    assert windows["observed_fs"].values.tolist() == [3000.0, 5000.0]
    assert windows["disordered"].values.tolist() == [1.0, 0.0]
    assert float(jump_rates(windows, n_bootstrap=20)["n_windows_disordered"].item()) == 1.0


def test_engine_jump_counter_counts_changes_until_the_lattice_is_lost():
    from hts_mlff.engine.wigner_seitz import count_jumps

    sites = np.array([[0, 0, 5, -1, 5, 9, 9], [3, 3, 3, 3, 3, 3, 3], [1, 2, 2, 7, 8, 1, 1]])
    empty = np.array([[1, 1, 1, -1, 1, 1, 1], [1] * 7, [1, 1, 1, 2, 1, 1, 1]])
    counts, first = count_jumps(sites, empty)
    assert counts.tolist() == [2, 0, 1] and first.tolist() == [2, -1, 1]

"""Green–Kubo κ on heat currents with a known autocorrelation (Ornstein–Uhlenbeck)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hts_mlff.analysis.green_kubo import (
    fit_two_stages,
    green_kubo_kappa,
    heat_current_autocorrelation,
    two_stage_decomposition,
)
from hts_mlff.units import BOLTZMANN_EV_PER_K, W_PER_M_K_PER_EV_PER_A_FS_K

DT_FS, TAU_FS, SIGMA, VOLUME_A3, T_K = 10.0, 200.0, 0.8, 2000.0, 40.0


def ou_currents(n_traj: int, n_t: int, *, seed: int = 0, tau_fs: float = TAU_FS, sigma: float = SIGMA) -> np.ndarray:
    """(n_traj, n_t, 3) stationary OU process: ACF σ² exp(−t/τ) per component."""
    rng = np.random.default_rng(seed)
    a = np.exp(-DT_FS / tau_fs)
    x = np.empty((n_traj, n_t, 3))
    x[:, 0] = rng.normal(scale=sigma, size=(n_traj, 3))
    noise = rng.normal(scale=sigma * np.sqrt(1 - a * a), size=(n_traj, n_t, 3))
    for t in range(1, n_t):
        x[:, t] = a * x[:, t - 1] + noise[:, t]
    return x


def dataset(currents: np.ndarray, forcefields: list[str]) -> xr.Dataset:
    n_traj, n_t, _ = currents.shape
    time = np.arange(n_t) * DT_FS
    return xr.Dataset(
        {
            "heat_current_eV_A_per_fs": (("traj", "time_fs", "xyz"), currents),
            "volume_A3": (("traj", "time_fs"), np.full((n_traj, n_t), VOLUME_A3)),
            "kinetic_temperature_K": (("traj", "time_fs"), np.full((n_traj, n_t), T_K)),
        },
        coords={
            "time_fs": time,
            "forcefield": ("traj", forcefields),
            "temperature_K": ("traj", [T_K] * n_traj),
            "pressure_bar": ("traj", [0.0] * n_traj),
            "seed": ("traj", np.arange(n_traj)),
        },
    )


def expected_kappa() -> float:
    a = np.exp(-DT_FS / TAU_FS)
    integral = SIGMA**2 * DT_FS * (1 + a) / (2 * (1 - a))  # trapezoid sum of σ² aᵏ (≈ σ²τ)
    return integral * W_PER_M_K_PER_EV_PER_A_FS_K / (VOLUME_A3 * BOLTZMANN_EV_PER_K * T_K**2)


def test_hcacf_is_the_average_over_time_origins():
    x = ou_currents(1, 50)
    acf = heat_current_autocorrelation(dataset(x, ["lj"]), max_lag_fs=200.0).values[0]
    direct = [np.mean([(x[0, t] * x[0, t + m]).sum() / 3 for t in range(50 - m)]) for m in range(len(acf))]
    np.testing.assert_allclose(acf, direct, rtol=1e-10)


def test_green_kubo_recovers_the_known_conductivity_within_its_interval():
    n = 12
    x = ou_currents(2 * n, 8000, seed=3)
    x[n:] *= np.sqrt(2.0)  # a second "force field" with twice the HCACF, so twice κ
    out = green_kubo_kappa(dataset(x, ["a"] * n + ["b"] * n))
    kappa = out["kappa_W_per_mK"].squeeze()
    true = expected_kappa()
    for name, factor in (("a", 1.0), ("b", 2.0)):
        point = out.sel(forcefield=name).squeeze()
        assert int(point["n_seeds"]) == n
        assert float(point["kappa_low"]) < factor * true < float(point["kappa_high"]), name
        assert float(point["kappa_W_per_mK"]) == pytest.approx(factor * true, rel=0.12)
        assert 3 * TAU_FS < float(point["cutoff_fs"]) < 15 * TAU_FS  # the first zero of the mean HCACF
    assert kappa.sizes["forcefield"] == 2


def test_a_fixed_cutoff_integrates_to_that_lag():
    x = ou_currents(6, 4000, seed=5)
    short = green_kubo_kappa(dataset(x, ["a"] * 6), cutoff_fs=TAU_FS)
    a = np.exp(-DT_FS / TAU_FS)
    k = int(TAU_FS / DT_FS)
    partial = SIGMA**2 * DT_FS * (0.5 + sum(a**j for j in range(1, k)) + 0.5 * a**k)
    expected = partial * W_PER_M_K_PER_EV_PER_A_FS_K / (VOLUME_A3 * BOLTZMANN_EV_PER_K * T_K**2)
    assert float(short["cutoff_fs"].squeeze()) == TAU_FS
    assert float(short["kappa_W_per_mK"].squeeze()) == pytest.approx(expected, rel=0.15)


def kappa_of_integral(integral: float) -> float:
    """W/(m·K) of an HCACF integral ((eV·Å/fs)²·fs) at the test's V and T."""
    return integral * W_PER_M_K_PER_EV_PER_A_FS_K / (VOLUME_A3 * BOLTZMANN_EV_PER_K * T_K**2)


def test_two_exponentials_are_fitted_exactly_when_there_is_no_noise():
    t = np.arange(400) * DT_FS
    curve = 3.0 * np.exp(-t / 40.0) + 0.5 * np.exp(-t / 900.0)
    np.testing.assert_allclose(fit_two_stages(t, curve), [3.0, 40.0, 0.5, 900.0], rtol=1e-6)


def test_two_stage_decomposition_recovers_a_fast_and_a_slow_current():
    # a heat current made of two independent parts, a fast one (τ 30 fs) and a slow one
    # (τ 600 fs): its HCACF is the sum of two exponentials and each part's κ is known
    n, n_t = 16, 12000
    fast = ou_currents(n, n_t, seed=11, tau_fs=30.0, sigma=1.2)
    slow = ou_currents(n, n_t, seed=12, tau_fs=600.0, sigma=0.4)
    out = two_stage_decomposition(dataset(fast + slow, ["a"] * n)).squeeze()
    expected = {"short": kappa_of_integral(1.2**2 * 30.0), "long": kappa_of_integral(0.4**2 * 600.0)}
    for part, true in expected.items():
        low, high = float(out[f"kappa_{part}_low"]), float(out[f"kappa_{part}_high"])
        assert low < true < high, (part, low, true, high)
        assert float(out[f"kappa_{part}_W_per_mK"]) == pytest.approx(true, rel=0.2)
    assert float(out["tau_short_fs"]) == pytest.approx(30.0, rel=0.2)
    assert float(out["tau_long_fs"]) == pytest.approx(600.0, rel=0.3)
    total = green_kubo_kappa(dataset(fast + slow, ["a"] * n)).squeeze()
    assert float(out["kappa_fit_W_per_mK"]) == pytest.approx(float(total["kappa_W_per_mK"]), rel=0.1)
    assert int(out["n_seeds"]) == n
    assert bool(out["split_resolved"])


def test_no_split_when_the_slow_part_outlives_the_fitted_lags():
    # the slow part (τ 20 ps) is far longer than the 2 ps fitted: its κ would be extrapolation
    n, n_t = 8, 2000
    fast = ou_currents(n, n_t, seed=21, tau_fs=30.0, sigma=1.2)
    slow = ou_currents(n, n_t, seed=22, tau_fs=20000.0, sigma=0.4)
    out = two_stage_decomposition(dataset(fast + slow, ["a"] * n), fit_to_fs=2000.0).squeeze()
    assert not bool(out["split_resolved"])
    assert np.isnan(float(out["kappa_long_W_per_mK"])) and np.isnan(float(out["kappa_fit_W_per_mK"]))
    assert float(out["tau_long_fs"]) > 2000.0

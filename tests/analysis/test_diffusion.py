"""MSD → D on Brownian trajectories with a known D; Nernst–Einstein and Arrhenius with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from hts_mlff.analysis.arrhenius import arrhenius_fit
from hts_mlff.analysis.conductivity import nernst_einstein
from hts_mlff.analysis.diffusion import (
    block_diffusion,
    diffusion_coefficient,
    mean_over_seeds,
    msd,
    yeh_hummer_correction,
)
from hts_mlff.units import BOLTZMANN_EV_PER_K

D_TRUE_A2_PER_FS = 1.0e-4  # = 1e-5 cm²/s
DT_FS = 100.0


def brownian(n_traj: int = 3, n_frames: int = 400, n_atoms: int = 150, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(scale=np.sqrt(2 * D_TRUE_A2_PER_FS * DT_FS), size=(n_traj, n_frames, n_atoms, 3))
    steps[:, 0] = rng.uniform(0, 20, size=(n_traj, n_atoms, 3))
    positions = np.cumsum(steps, axis=1)
    return xr.DataArray(
        positions,
        dims=("traj", "position_time_fs", "atom", "xyz"),
        coords={"position_time_fs": np.arange(n_frames) * DT_FS, "seed": ("traj", np.arange(n_traj))},
    )


def test_fft_msd_equals_the_direct_average_over_time_origins():
    x = brownian(n_traj=1, n_frames=30, n_atoms=4)
    fast = msd(x, remove_com_drift=False).isel(traj=0).values
    p = x.isel(traj=0).values
    direct = [np.mean([np.sum((p[t + m] - p[t]) ** 2, axis=1).mean() for t in range(30 - m)]) for m in range(30)]
    np.testing.assert_allclose(fast, direct, rtol=1e-9, atol=1e-12)


def test_brownian_trajectories_give_back_their_diffusion_coefficient():
    x = brownian().chunk({"traj": 1})
    curves = msd(x)
    fitted = diffusion_coefficient(curves).compute()
    # Removing the centre-of-mass drift takes 1/N of the MSD away.
    expected = D_TRUE_A2_PER_FS * (1 - 1 / 150)
    np.testing.assert_allclose(fitted["D_A2_per_fs"].values, expected, rtol=0.06)
    np.testing.assert_allclose(fitted["D_cm2_per_s"].values, 0.1 * expected, rtol=0.06)
    assert (fitted["fit_start_fs"] == 1000.0).all() and (fitted["fit_stop_fs"] == 399 * DT_FS / 2).all()
    summary = mean_over_seeds(fitted["D_cm2_per_s"], by=["seed"])
    assert summary["n"].sum() == 3
    blocks = block_diffusion(x, n_blocks=4).compute()
    assert (blocks["D_block_sem_cm2_per_s"] > 0).all()
    assert abs(float(blocks["D_cm2_per_s"].mean()) / 1e-5 - 1) < 0.15


def test_species_mask_selects_the_mobile_atoms():
    x = brownian(n_traj=1, n_atoms=400, seed=1)
    frozen = x.copy()
    frozen[:, :, 200:] = x[:, :1, 200:].values  # atoms 200… never move
    mask = xr.DataArray(np.arange(400) < 200, dims="atom")
    d_mobile = diffusion_coefficient(msd(frozen, atom_mask=mask, remove_com_drift=False))["D_A2_per_fs"]
    d_all = diffusion_coefficient(msd(frozen, remove_com_drift=False))["D_A2_per_fs"]
    assert float(d_mobile.squeeze()) == pytest.approx(D_TRUE_A2_PER_FS, rel=0.1)
    assert float(d_all.squeeze()) == pytest.approx(D_TRUE_A2_PER_FS / 2, rel=0.1)


def test_nernst_einstein_worked_example():
    # Li⁺, n = 1e22 cm⁻³, D = 1e-6 cm²/s, 300 K: σ = n e² D / kT
    #   = 1e22 · (1.602176634e-19 C)² · 1e-6 cm²/s / (1.380649e-23 J/K · 300 K) = 0.061979 S/cm
    sigma = nernst_einstein(1e-6, number_density_per_cm3=1e22, charge=1, temperature_K=300.0)
    assert sigma == pytest.approx(0.061979, rel=1e-4)
    assert nernst_einstein(1e-6, number_density_per_cm3=1e22, charge=2, temperature_K=300.0) == pytest.approx(4 * sigma)


def test_arrhenius_fit_recovers_the_activation_energy_and_extrapolates_with_an_interval():
    temps = np.array([500.0, 600.0, 700.0, 800.0, 900.0])
    ea, prefactor = 0.30, 50.0
    exact = prefactor * np.exp(-ea / (BOLTZMANN_EV_PER_K * temps))
    values = xr.DataArray(exact, dims="temperature_K", coords={"temperature_K": temps})
    fit = arrhenius_fit(values)
    assert float(fit["activation_energy_eV"]) == pytest.approx(ea, rel=1e-9)
    truth_300 = prefactor * np.exp(-ea / (BOLTZMANN_EV_PER_K * 300.0))
    assert float(fit["value_at_K"]) == pytest.approx(truth_300, rel=1e-8)

    noisy = values * np.exp(np.random.default_rng(3).normal(scale=0.05, size=5))
    fit = arrhenius_fit(noisy)
    assert float(fit["value_low"]) < truth_300 < float(fit["value_high"])
    assert float(fit["activation_energy_se_eV"]) > 0

    over_t = values / values["temperature_K"]  # σ = (A/T) exp(−Ea/kT): exact in the σT form
    sigma_t = arrhenius_fit(over_t, times_temperature=True)
    assert float(sigma_t["activation_energy_eV"]) == pytest.approx(ea, rel=1e-9)
    assert float(sigma_t["value_at_K"]) == pytest.approx(truth_300 / 300.0, rel=1e-8)


def test_yeh_hummer_adds_the_finite_size_term():
    # ξ kT / (6π η L): 100 K, η = 2.8e-4 Pa·s (liquid argon), L = 17.1 Å
    corrected = yeh_hummer_correction(2e-5, temperature_K=100.0, viscosity_Pa_s=2.8e-4, box_length_A=17.1)
    term_m2_per_s = 2.837297 * 1.380649e-23 * 100.0 / (6 * np.pi * 2.8e-4 * 17.1e-10)
    assert corrected == pytest.approx(2e-5 + term_m2_per_s * 1e4, rel=1e-6)

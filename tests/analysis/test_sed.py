"""SED on synthetic crystals: known damped modes give back their frequencies and lifetimes,
the k sets are complete, and the SED obeys its kinetic-energy sum rule."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from ase.build import bulk

from hts_mlff.analysis.sed import (
    fit_peak,
    grid_kpoints,
    line_kpoints,
    mode_heat_capacity_eV_per_K,
    phonon_lifetimes,
    relaxation_time_running_kappa,
    sed_thermal_conductivity,
    spectral_energy_density,
    windowed_lorentzian,
)
from hts_mlff.units import EV_PER_AMU_A2_PER_FS2

A_LAT = 5.3
REPEAT = (2, 2, 6)
DT_FS = 20.0


def crystal_dataset(velocities: np.ndarray, sites: np.ndarray) -> xr.Dataset:
    """A store-shaped dataset: (traj, velocity_time_fs, atom, xyz) velocities of argon on ``sites``."""
    n_traj, n_t, n_atoms, _ = velocities.shape
    return xr.Dataset(
        {
            "velocities": (("traj", "velocity_time_fs", "atom", "xyz"), velocities),
            "lattice_site_A": (("traj", "atom", "xyz"), np.broadcast_to(sites, (n_traj, n_atoms, 3)).copy()),
            "basis_index": (("traj", "atom"), np.zeros((n_traj, n_atoms), dtype=np.int32)),
            "atomic_numbers": (("traj", "atom"), np.full((n_traj, n_atoms), 18, dtype=np.int32)),
        },
        coords={"velocity_time_fs": np.arange(n_t) * DT_FS, "seed": ("traj", np.arange(n_traj))},
    )


def ou_complex(rng: np.random.Generator, n_t: int, gamma_per_ps: float) -> np.ndarray:
    """Stationary complex OU process with ⟨z(0) z*(t)⟩ = exp(−γ|t|)."""
    a = np.exp(-gamma_per_ps * DT_FS * 1e-3)
    z = np.empty(n_t, dtype=complex)
    z[0] = (rng.normal() + 1j * rng.normal()) / np.sqrt(2)
    kicks = (rng.normal(size=n_t) + 1j * rng.normal(size=n_t)) * np.sqrt((1 - a * a) / 2)
    for t in range(1, n_t):
        z[t] = a * z[t - 1] + kicks[t]
    return z


MODES = [  # (k index along Γ–X, polarisation axis, ν THz, γ rad/ps)
    (2, 0, 1.0, 0.30),
    (2, 2, 1.8, 0.60),
    (4, 1, 1.5, 0.15),
]


def damped_mode_trajectories(n_traj: int, n_t: int, seed: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    atoms = bulk("Ar", "fcc", a=A_LAT, cubic=True).repeat(REPEAT)
    sites = atoms.get_positions()
    k_line = line_kpoints(np.asarray(atoms.cell), end_A=np.array([0.0, 0.0, 2 * np.pi / A_LAT]))
    rng = np.random.default_rng(seed)
    time_ps = np.arange(n_t) * DT_FS * 1e-3
    v = np.zeros((n_traj, n_t, len(atoms), 3))
    for r in range(n_traj):
        for k_index, axis, nu, gamma in MODES:
            amplitude = ou_complex(rng, n_t, gamma) * np.exp(2j * np.pi * nu * time_ps)  # peak at +ω
            wave = np.exp(-1j * sites @ k_line[k_index])  # picked up by Σ_j e^{+ik·r_j}
            v[r, :, :, axis] += 1e-3 * (amplitude[:, None] * wave[None, :]).real
    return crystal_dataset(v, sites), k_line


def test_k_sets_are_complete_and_commensurate():
    a = A_LAT
    primitive = a / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    k = grid_kpoints(np.diag([3, 3, 2]) * a, primitive)
    assert k.shape == (4 * 18, 3)
    supercell = np.diag([3, 3, 2]) * a
    phases = k @ supercell.T / (2 * np.pi)
    np.testing.assert_allclose(phases, np.round(phases), atol=1e-9)  # commensurate with the supercell
    frac = k @ primitive.T / (2 * np.pi)
    distinct = {tuple(np.round((f - np.floor(f + 1e-9)) * 72).astype(int) % 72) for f in frac}
    assert len(distinct) == len(k)  # distinct modulo the primitive reciprocal lattice
    line = line_kpoints(np.diag([2, 2, 6]) * a, end_A=np.array([0, 0, 2 * np.pi / a]))
    np.testing.assert_allclose(line[:, 2], np.arange(7) / 6 * 2 * np.pi / a)
    with pytest.raises(ValueError, match="not commensurate"):
        line_kpoints(np.diag([2, 2, 6]) * a, end_A=np.array([0, 0, 0.1]))


def test_damped_modes_give_back_their_frequencies_and_lifetimes():
    ds, k_line = damped_mode_trajectories(n_traj=24, n_t=6000)  # 24 seeds × 120 ps
    sed = spectral_energy_density(ds, k_line).mean("traj")
    fits = phonon_lifetimes(sed)
    for k_index, axis, nu, gamma in MODES:
        fit = fits.isel(k=k_index, branch=axis)
        tau, tau_err = float(fit.lifetime_ps), float(fit.lifetime_ps_err)
        assert float(fit.peak_THz) == pytest.approx(nu, abs=0.01)
        assert tau == pytest.approx(1 / (2 * gamma), rel=0.12)
        assert 0 < tau_err < 0.1 * tau
        assert abs(tau - 1 / (2 * gamma)) < 4 * tau_err  # the fit's error bar is honest
    # an empty (k, branch) holds nothing: 1000× below the modes' peaks
    assert float(sed.isel(k=3).max()) < 1e-3 * float(sed.isel(k=2, branch=0).max())


def test_polarisation_projection_separates_branches_and_sums_to_the_total():
    ds, k_line = damped_mode_trajectories(n_traj=2, n_t=600, seed=1)
    cartesian = spectral_energy_density(ds, k_line)
    rotation = np.linalg.qr(np.random.default_rng(2).normal(size=(3, 3)))[0].astype(complex)
    rotated = spectral_energy_density(ds, k_line, polarizations=np.broadcast_to(rotation, (len(k_line), 3, 3)))
    np.testing.assert_allclose(rotated.sum("branch"), cartesian.sum("branch"), rtol=1e-9, atol=1e-18)
    assert not np.allclose(rotated.values, cartesian.values)


def test_sum_rule_the_sed_holds_the_kinetic_energy():
    atoms = bulk("Ar", "fcc", a=A_LAT, cubic=True).repeat((2, 2, 2))
    rng = np.random.default_rng(4)
    n_t = 400
    v = rng.normal(scale=2e-3, size=(1, n_t, len(atoms), 3))
    ds = crystal_dataset(v, atoms.get_positions())
    primitive = A_LAT / 2 * np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    k = grid_kpoints(np.asarray(atoms.cell), primitive)
    sed = spectral_energy_density(ds, k).isel(traj=0)
    d_omega = 2 * np.pi * float(sed.frequency_THz[1] - sed.frequency_THz[0])  # rad/ps
    half = float(sed.sum()) * d_omega  # ω ≥ 0 of a symmetric k set: half of the total
    kinetic = 0.5 * atoms.get_masses()[0] * (v[0] ** 2).sum(axis=(1, 2)).mean() * EV_PER_AMU_A2_PER_FS2
    assert half == pytest.approx(kinetic / 2, rel=0.02)


def test_kappa_of_known_modes_and_heat_capacities():
    fits = xr.Dataset(
        {
            "lifetime_ps": (("k", "branch"), np.array([[2.0, 4.0], [np.nan, 1.0]])),
            "peak_THz": (("k", "branch"), np.array([[1.0, 2.0], [1.5, 0.0]])),
        }
    )
    v = np.zeros((2, 2, 3))
    v[0, 0] = [3.0, 0.0, 0.0]  # Å/ps
    v[0, 1] = [0.0, 0.0, 6.0]
    v[1, :] = 5.0  # NaN lifetime and a zero-frequency mode: excluded
    out = sed_thermal_conductivity(fits, v, volume_A3=1000.0, temperature_K=40.0)
    kb = 8.617333262e-5
    expected_xx = kb * 9.0 * 2.0 / 1000.0 * 1.602176634e-19 / 1e-22
    expected_zz = kb * 36.0 * 4.0 / 1000.0 * 1.602176634e-19 / 1e-22
    np.testing.assert_allclose(out["kappa_tensor_W_per_mK"], [expected_xx, 0.0, expected_zz], rtol=1e-12)
    assert float(out["kappa_W_per_mK"]) == pytest.approx((expected_xx + expected_zz) / 3)
    assert int(out["n_modes"]) == 2
    quantum = mode_heat_capacity_eV_per_K(np.array([1e-6, 1.0, 20.0]), temperature_K=40.0, kind="quantum")
    assert quantum[0] == pytest.approx(kb)
    x = 4.135667696e-15 * 1e12 / (kb * 40.0)  # hν/k_BT = 1.2 at 1 THz, 40 K
    assert quantum[1] == pytest.approx(kb * x * x * np.exp(x) / (np.exp(x) - 1) ** 2, rel=1e-9)
    assert 0.88 * kb < quantum[1] < 0.89 * kb
    assert quantum[2] < 1e-5 * kb


def test_a_record_shorter_than_a_few_lifetimes_is_not_read_as_a_shorter_lifetime():
    """12-ps records of a 3.3-ps mode: eq. 8 alone reads the record's resolution as damping; the
    record-aware line shape does not."""
    ds, k_line = damped_mode_trajectories(n_traj=48, n_t=600, seed=3)
    sed = spectral_energy_density(ds, k_line).mean("traj")
    assert sed.attrs["record_ps"] == pytest.approx(12.0)
    k_index, axis, _, gamma = MODES[2]
    aware = phonon_lifetimes(sed).isel(k=k_index, branch=axis)
    plain = phonon_lifetimes(sed, record_ps=1e12).isel(k=k_index, branch=axis)
    true = 1 / (2 * gamma)
    assert float(aware.lifetime_ps) == pytest.approx(true, rel=0.2)
    assert float(plain.lifetime_ps) < 0.7 * true
    assert bool(aware.resolved)


def test_noisy_periodograms_give_unbiased_half_widths_with_honest_error_bars():
    """A seed-mean periodogram scatters as Gamma(n_seeds) about its mean: the fit window must not
    follow the noise (a half width read off raw noise gives 50 % scatter), and the reported
    error must match the scatter over realisations."""
    rng = np.random.default_rng(5)
    omega = np.linspace(0.0, 15.0, 600)
    gamma, n_seeds = 0.3, 4
    truth = windowed_lorentzian(omega, 1.0, 6.0, gamma, record_ps=100.0)
    fits = np.array(
        [
            fit_peak(omega, truth * rng.gamma(n_seeds, 1.0 / n_seeds, size=omega.size), guess=6.0, record_ps=100.0)
            for _ in range(150)
        ]
    )
    width, width_err = fits[:, 0, 2], fits[:, 1, 2]
    assert np.isfinite(width).all()
    assert abs(width.mean() - gamma) < 0.05 * gamma
    assert 0.7 < width.std() / np.median(width_err) < 1.4
    assert width.std() < 0.2 * gamma


def test_a_store_chunked_in_time_gives_the_same_sed_as_one_block():
    ds, k_line = damped_mode_trajectories(n_traj=2, n_t=400, seed=3)
    whole = spectral_energy_density(ds, k_line)
    chunked = spectral_energy_density(ds.chunk({"velocity_time_fs": 64}), k_line)
    assert ds.chunk({"velocity_time_fs": 64})["velocities"].data.numblocks[1] == 7
    np.testing.assert_allclose(chunked.values, whole.values, rtol=1e-10, atol=1e-20)


def test_relaxation_time_running_kappa_of_known_modes():
    """κ_RTA(t) = Σ κ_mode (1 − e^{−t/τ}): two modes (0.2 W/m·K, 1 ps; 0.1 W/m·K, 10 ps), one
    without a lifetime (left out)."""
    modes = xr.Dataset(
        {
            "lifetime_ps": (("k", "branch"), np.array([[1.0, 10.0, np.nan]])),
            "mode_kappa_W_per_mK": (("k", "branch"), np.array([[0.2, 0.1, 0.0]])),
        }
    )
    lag_fs = np.array([0.0, 1000.0, 10_000.0, 1e9])
    kappa = relaxation_time_running_kappa(modes, lag_fs)
    expected = 0.2 * (1 - np.exp(-lag_fs / 1000.0)) + 0.1 * (1 - np.exp(-lag_fs / 10_000.0))
    np.testing.assert_allclose(kappa.values, expected, rtol=1e-12)
    assert kappa.dims == ("lag_fs",) and float(kappa[-1]) == pytest.approx(0.3)

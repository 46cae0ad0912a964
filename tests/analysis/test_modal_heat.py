"""The heat current resolved on normal modes: running-wave energies of an LJ crystal against its
kinetic and harmonic energies, and the κ decomposition on synthetic mode energies with known
lifetimes and known correlations."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from ase.build import bulk
from ase.calculators.lj import LennardJones as AseLennardJones

from hts_mlff.analysis.modal_heat import (
    energies_from_series,
    energy_lifetimes_ps,
    energy_series,
    modal_currents,
    modal_kappa,
    normal_mode_coordinates,
    running_wave_energies,
)
from hts_mlff.analysis.sed import grid_kpoints, own_cell_kpoints
from hts_mlff.forcefields.lennard_jones import LennardJones
from hts_mlff.thermal import fcc_primitive_cell, harmonic_reference
from hts_mlff.units import BOLTZMANN_EV_PER_K, EV_PER_AMU_A2_PER_FS2, W_PER_M_K_PER_EV_PER_A_FS_K

LATTICE_A = 5.30


@pytest.fixture(scope="module")
def crystal():
    atoms = bulk("Ar", "fcc", a=LATTICE_A, cubic=True).repeat(3)  # 108 atoms
    cell = np.asarray(atoms.cell)
    k = grid_kpoints(cell, np.asarray(fcc_primitive_cell("Ar", LATTICE_A).cell))
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5)
    frequencies, polarizations, velocities = harmonic_reference(lj, fcc_primitive_cell("Ar", LATTICE_A), -k)
    return atoms, k, frequencies, polarizations, velocities


def _group(atoms, displacements: np.ndarray, velocities: np.ndarray, *, chunk: int = 2) -> xr.Dataset:
    """A one-trajectory dataset as a store gives it: (traj, time, atom, xyz), dask-chunked in time."""
    sites = atoms.positions
    n_t, n = displacements.shape[:2]
    time = np.arange(n_t) * 10.0
    ds = xr.Dataset(
        {
            "positions": (("traj", "position_time_fs", "atom", "xyz"), (sites[None] + displacements)[None]),
            "velocities": (("traj", "velocity_time_fs", "atom", "xyz"), velocities[None]),
            "lattice_site_A": (("traj", "atom", "xyz"), sites[None]),
            "basis_index": (("traj", "atom"), np.zeros((1, n), dtype=np.int32)),
            "atomic_numbers": (("traj", "atom"), np.full((1, n), 18, dtype=np.int32)),
        },
        coords={"position_time_fs": time, "velocity_time_fs": time},
    )
    return ds.chunk({"position_time_fs": chunk, "velocity_time_fs": chunk})


def test_a_running_wave_puts_its_energy_in_its_own_mode_only(crystal):
    atoms, k, frequencies, polarizations, _ = crystal
    mass = atoms.get_masses()[0]
    m, s = 5, 1  # a k inside the zone (not its own −k) and a transverse branch
    assert not np.allclose(k[m], -k[m])
    omega = 2e-3 * np.pi * frequencies[m, s]  # rad/fs
    amplitude = 0.02  # Å
    phase = atoms.positions @ k[m]
    times = np.array([0.0, 37.0, 120.0])
    wave = polarizations[m, :, s][None, None, :] * np.exp(1j * (phase[None, :, None] - omega * times[:, None, None]))
    u = amplitude * wave.real
    v = (amplitude * -1j * omega * wave).real
    q, q_dot = normal_mode_coordinates(_group(atoms, u, v), k[None], polarizations, dtype=np.complex128)
    energy = running_wave_energies(q[0], q_dot[0], frequencies)  # (n_k, n_b, n_t)
    harmonic = 0.5 * mass * ((v**2).sum((1, 2)) + omega**2 * (u**2).sum((1, 2))) * EV_PER_AMU_A2_PER_FS2
    np.testing.assert_allclose(energy[m, s], harmonic, rtol=1e-10)
    # the same energies from the three series a study keeps, at any frequency set
    again = energies_from_series(energy_series(q[0], q_dot[0]).reshape(3, -1, 3), frequencies.ravel())
    np.testing.assert_allclose(again.reshape(energy.shape)[m, s], energy[m, s], rtol=1e-5)
    others = np.nansum(energy, axis=(0, 1)) - energy[m, s]
    assert np.all(others < 1e-10 * harmonic)  # the same wave at −k (travelling the other way) holds nothing


def test_mode_energies_add_up_to_the_kinetic_and_harmonic_energy(crystal):
    atoms, k, frequencies, polarizations, _ = crystal
    rng = np.random.default_rng(3)
    mass = atoms.get_masses()[0]
    n = len(atoms)
    v = rng.normal(scale=2e-3, size=(1, n, 3))
    v -= v.mean(axis=1, keepdims=True)  # no centre-of-mass motion (it is the ω = 0 mode)
    q, q_dot = normal_mode_coordinates(
        _group(atoms, np.zeros((1, n, 3)), v), k[None], polarizations, dtype=np.complex128
    )
    kinetic = np.nansum(running_wave_energies(q[0], q_dot[0], frequencies))
    assert kinetic == pytest.approx(0.5 * mass * (v**2).sum() * EV_PER_AMU_A2_PER_FS2, rel=1e-10)
    # static displacements: Σ E = ½ uᵀΦu, Φ from ASE's LJ forces (symmetric difference, O(u⁴))
    u = rng.normal(scale=2e-3, size=(n, 3))
    u += 0.05 - u.mean(axis=0)  # a rigid shift on top, which the centre-of-mass removal takes out
    calc = AseLennardJones(epsilon=0.010327, sigma=3.405, rc=8.5)
    forces = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions += sign * (u - 0.05)
        moved.calc = calc
        forces.append(moved.get_forces())
    harmonic = -0.25 * float(((u - 0.05) * (forces[0] - forces[1])).sum())
    q, q_dot = normal_mode_coordinates(
        _group(atoms, u[None], np.zeros((1, n, 3))), k[None], polarizations, dtype=np.complex128
    )
    assert np.nansum(running_wave_energies(q[0], q_dot[0], frequencies)) == pytest.approx(harmonic, rel=1e-4)


def test_k_in_another_seeds_cell_keeps_its_fractions(crystal):
    atoms, k, *_ = crystal
    cell = np.asarray(atoms.cell)
    other = cell * 1.01
    moved = own_cell_kpoints(k, cell, other)
    np.testing.assert_allclose(moved @ other.T, k @ cell.T, atol=1e-12)


def _ou_energies(rng, gammas_per_fs: np.ndarray, n_t: int, dt_fs: float, kT: float) -> np.ndarray:
    """|z|²·kT of complex Ornstein–Uhlenbeck amplitudes: exponential energies whose
    autocorrelation decays as e^{−2γt} (lifetime 1/(2γ))."""
    decay = np.exp(-gammas_per_fs * dt_fs)
    noise = np.sqrt(1 - decay**2)
    z = np.empty((len(gammas_per_fs), n_t), dtype=complex)
    z[:, 0] = (rng.normal(size=len(z)) + 1j * rng.normal(size=len(z))) / np.sqrt(2)
    for t in range(1, n_t):
        kick = (rng.normal(size=len(z)) + 1j * rng.normal(size=len(z))) / np.sqrt(2)
        z[:, t] = decay * z[:, t - 1] + noise * kick
    return kT * np.abs(z) ** 2


def test_the_split_recovers_known_lifetimes_and_known_correlations():
    rng = np.random.default_rng(11)
    dt, n_t, n_traj, temperature = 20.0, 3000, 12, 40.0
    kT = BOLTZMANN_EV_PER_K * temperature
    tau_fs = np.array([400.0, 1000.0, 2500.0])
    velocity = np.array([[0.02, 0.0, 0.0], [0.0, 0.03, 0.0], [0.0, 0.0, 0.01]])  # Å/fs
    # modes 0–2 independent; mode 3 a copy of mode 0 with the same velocity (fully correlated)
    energies = []
    for _ in range(n_traj):
        e = _ou_energies(rng, 1 / (2 * tau_fs), n_t, dt, kT)
        energies.append(np.concatenate([e, e[:1]]))
    energies = np.stack(energies).astype(np.float32)
    v4 = np.concatenate([velocity, velocity[:1]])
    modal = modal_currents(energies, v4, np.full(n_traj, temperature), max_lag=n_t // 3)
    np.testing.assert_allclose(energy_lifetimes_ps(modal["mode_acf"][:, :3], dt), tau_fs * 1e-3, rtol=0.15)
    own = (
        np.stack(
            [
                np.sum([np.correlate(c[:, a], c[:, a], "full")[n_t - 1 :][: n_t // 3] for a in range(3)], 0)
                for c in modal["current"]
            ]
        )
        / (n_t - np.arange(n_t // 3))
        / 3.0
    )
    volume = np.full(n_traj, 1e4)
    row, curves = modal_kappa(
        modal,
        total_hcacf=own,
        total_dt_fs=dt,
        modal_dt_fs=dt,
        group_velocity_A_per_fs=v4,
        volumes_A3=volume,
        temperatures_K=np.full(n_traj, temperature),
        cutoff_fs=8000.0,
    )
    # the full current is J_ph here: nothing beyond it, to rounding
    assert abs(row["kappa_beyond_phonon_W_per_mK"]) < 1e-9 * row["kappa_gk_W_per_mK"]
    # κ_diag = (1/V) Σ k_B |v|²/3 τ with mode 0 counted twice; the copy adds as much again as cross
    expected_diag = (np.sum((velocity**2).sum(1) / 3 * tau_fs) + (velocity[0] ** 2).sum() / 3 * tau_fs[0]) * kT**2
    to_kappa = W_PER_M_K_PER_EV_PER_A_FS_K / (1e4 * BOLTZMANN_EV_PER_K * temperature**2)
    diagonal = row["kappa_diagonal_W_per_mK"]
    assert row["kappa_diagonal_low"] < expected_diag * to_kappa < row["kappa_diagonal_high"]
    assert diagonal == pytest.approx(expected_diag * to_kappa, rel=0.15)
    expected_cross = 2 * (velocity[0] ** 2).sum() / 3 * tau_fs[0] * kT**2
    ratio = row["kappa_cross_W_per_mK"] / diagonal
    assert ratio == pytest.approx(expected_cross / expected_diag, abs=0.08)
    assert row["kappa_cross_low"] < expected_cross * to_kappa < row["kappa_cross_high"]
    assert row["kappa_phonon_W_per_mK"] == pytest.approx(diagonal + row["kappa_cross_W_per_mK"])
    # the seed-mean running curves pass through the tabulated means at the cut-off
    at_cut = float(curves["kappa_phonon_W_per_mK"].interp(lag_fs=8000.0))
    assert at_cut == pytest.approx(row["kappa_phonon_W_per_mK"], rel=1e-9)

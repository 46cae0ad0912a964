"""The LJ heat current is d/dt Σ_i r_i e_i along the true dynamics (ASE's energies per atom)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.calculators.lj import LennardJones as AseLJ

from hts_mlff.engine.state import state_from_atoms
from hts_mlff.forcefields import LennardJones
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU, EV_PER_AMU_A2_PER_FS2

EPS, SIG, RC = 0.0103, 3.4, 8.5


def _cluster(seed: int) -> tuple[Atoms, np.ndarray]:
    """A 3 × 3 × 2 cluster of argon with random displacements and velocities, far from its images."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(3), np.arange(3), np.arange(2), indexing="ij"), -1).reshape(-1, 3)
    positions = 20.0 + 3.8 * grid + rng.normal(scale=0.15, size=grid.shape)
    atoms = Atoms("Ar" * len(grid), positions=positions, cell=[60.0, 60.0, 60.0], pbc=True)
    velocities = rng.normal(scale=0.01, size=grid.shape)  # Å/fs, ~500 K: every term matters
    velocities -= velocities.mean(0)  # J is defined in the centre-of-mass frame
    return atoms, velocities


def _energy_moment(atoms: Atoms, velocities: np.ndarray) -> np.ndarray:
    """Σ_i r_i e_i (eV·Å) with ASE's shifted-LJ energies per atom."""
    atoms.calc = AseLJ(epsilon=EPS, sigma=SIG, rc=RC, smooth=False)
    potential = atoms.get_potential_energies()
    kinetic = 0.5 * atoms.get_masses() * (velocities**2).sum(1) * EV_PER_AMU_A2_PER_FS2
    return ((potential + kinetic)[:, None] * atoms.get_positions()).sum(0)


def _shifted(atoms: Atoms, velocities: np.ndarray, h_fs: float) -> tuple[Atoms, np.ndarray]:
    """State at t + h along Newton's equations (to second order in h)."""
    atoms.calc = AseLJ(epsilon=EPS, sigma=SIG, rc=RC, smooth=False)
    accel = atoms.get_forces() / atoms.get_masses()[:, None] * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
    moved = atoms.copy()
    moved.positions = atoms.positions + velocities * h_fs + 0.5 * accel * h_fs**2
    return moved, velocities + accel * h_fs


@pytest.mark.parametrize("seed", [0, 1])
def test_heat_current_is_the_time_derivative_of_the_energy_moment(seed):
    atoms, velocities = _cluster(seed)
    state = state_from_atoms([atoms], device=torch.device("cpu"), dtype=torch.float64)
    state.velocities = torch.as_tensor(velocities)
    current = LennardJones(EPS, sigma_A=SIG, cutoff_A=RC, shift=True).heat_current(state)[0].numpy()

    h = 2e-3
    forward = _energy_moment(*_shifted(atoms, velocities, h))
    backward = _energy_moment(*_shifted(atoms, velocities, -h))
    expected = (forward - backward) / (2 * h)
    assert np.abs(current).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(current, expected, rtol=1e-5, atol=1e-9)


def test_heat_current_is_per_replica_and_extensive():
    """Two replicas in one pack give their own currents; a replica and its copy give the same."""
    a, va = _cluster(0)
    b, vb = _cluster(1)
    lj = LennardJones(EPS, sigma_A=SIG, cutoff_A=RC)
    pack = state_from_atoms([a, b, a], device=torch.device("cpu"), dtype=torch.float64)
    pack.velocities = torch.as_tensor(np.concatenate([va, vb, va]))
    single = state_from_atoms([b], device=torch.device("cpu"), dtype=torch.float64)
    single.velocities = torch.as_tensor(vb)
    currents = lj.heat_current(pack).numpy()
    np.testing.assert_allclose(currents[1], lj.heat_current(single)[0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(currents[0], currents[2], rtol=1e-12)


def test_heat_current_ignores_a_drift_of_the_whole_replica():
    atoms, velocities = _cluster(0)
    lj = LennardJones(EPS, sigma_A=SIG, cutoff_A=RC)
    state = state_from_atoms([atoms], device=torch.device("cpu"), dtype=torch.float64)
    state.velocities = torch.as_tensor(velocities)
    still = lj.heat_current(state)
    state.velocities = torch.as_tensor(velocities + np.array([0.003, -0.001, 0.002]))
    np.testing.assert_allclose(lj.heat_current(state).numpy(), still.numpy(), rtol=1e-10, atol=1e-14)


def test_force_fields_without_an_energy_partition_say_so():
    from hts_mlff.engine.forcefield import ForceField

    class NoPartition(ForceField):
        def forward(self, state, *, neighbors=None, compute_stress=True):
            raise AssertionError

        def config(self):
            return {}

    atoms, _ = _cluster(0)
    state = state_from_atoms([atoms], device=torch.device("cpu"), dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="no per-atom energy partition"):
        NoPartition().heat_current(state)

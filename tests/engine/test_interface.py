"""Two-phase preparation, the z-only barostat and the per-slab interface observer."""

from __future__ import annotations

import numpy as np
import torch
from ase.build import bulk

from hts_mlff.engine.md import MDProtocol, run_md
from hts_mlff.engine.observers import ThermoObserver
from hts_mlff.engine.observers.interface import InterfaceObserver
from hts_mlff.engine.schedule import melt_half_temperatures
from tests.conftest import batch

REPEAT = (3, 3, 8)


def _crystal(a: float = 5.30, repeat=REPEAT):
    return bulk("Ar", "fcc", a=a, cubic=True).repeat(repeat)


def test_melt_half_targets_follow_the_fractional_z_of_each_atom():
    atoms = _crystal()
    atoms.positions[:, 2] += 3 * atoms.cell[2, 2] + 0.3  # unwrapped far away: the wrapped fraction decides
    state = batch([atoms])
    targets = melt_half_temperatures(state, torch.tensor([30.0], dtype=state.dtype), 250.0).numpy()
    fraction = (atoms.get_scaled_positions(wrap=True)[:, 2] + 1e-12) % 1.0
    np.testing.assert_array_equal(targets, np.where(fraction >= 0.5, 250.0, 30.0))
    whole = melt_half_temperatures(state, torch.tensor([30.0], dtype=state.dtype), 250.0, fraction=1.0).numpy()
    np.testing.assert_array_equal(whole, 250.0)  # a bulk liquid: every atom melts
    quarter = melt_half_temperatures(state, torch.tensor([30.0], dtype=state.dtype), 250.0, fraction=0.25).numpy()
    np.testing.assert_array_equal(quarter, np.where(fraction >= 0.75, 250.0, 30.0))


def test_order_is_one_for_a_perfect_crystal_and_small_for_a_scrambled_half():
    atoms = _crystal()
    rng = np.random.default_rng(0)
    upper = atoms.get_scaled_positions()[:, 2] >= 0.5
    atoms.positions[upper, :2] = rng.uniform(0, atoms.cell[0, 0], (upper.sum(), 2))
    state = batch([atoms])
    observer = InterfaceObserver([REPEAT], n_slabs=10)
    observer.start(state, n_frames=1)
    observer.record(state, None, frame=0, alive=np.array([True]))
    psi = observer.results(time_fs=np.zeros(1))["interface_order"][0, 0]
    np.testing.assert_allclose(psi[:4], 1.0, atol=1e-9)  # the lattice: every phase equal
    assert (psi[4:8] < 0.1).all()  # 36 random atoms per slab: ≈ 1/36
    assert np.isnan(psi[8:]).all()  # beyond this replica's 8 slabs


def test_a_z_only_barostat_keeps_the_lateral_cell_and_relaxes_pzz():
    from hts_mlff.forcefields import LennardJones

    replicas = []
    for length in (31.0, 33.0):  # squeezed and stretched along z only (unstrained: 31.8 Å)
        atoms = _crystal(a=5.30, repeat=(3, 3, 6))
        atoms.set_cell(np.diag([15.9, 15.9, length]), scale_atoms=True)
        replicas.append(atoms)
    lj = LennardJones(0.010327, sigma_A=3.405, cutoff_A=7.5)
    state = batch(replicas)
    protocol = MDProtocol(
        timestep_fs=10.0,
        production_steps=800,
        sample_every_steps=50,
        ensemble="npt",
        equilibration_steps=300,
        friction_per_fs=0.01,
        barostat_time_constant_fs=300.0,
        barostat_axes="z",
    )
    result = run_md(
        state,
        lj,
        protocol=protocol,
        temperature_K=torch.tensor([20.0, 20.0], dtype=state.dtype),
        pressure_bar=torch.tensor([0.0, 0.0], dtype=state.dtype),
        keys=[5, 6],
        observers=[ThermoObserver()],
    )
    cells = result.arrays["final_cell"]
    for cell in cells:
        np.testing.assert_allclose(cell[:2], np.diag([15.9, 15.9, 0.0])[:2], atol=1e-12)  # a, b untouched
    assert cells[0, 2, 2] > 31.5 and cells[1, 2, 2] < 32.7  # both relaxed towards the same length
    assert abs(cells[0, 2, 2] - cells[1, 2, 2]) < 0.3
    pressure = result.arrays["virial_pressure_bar"][:, len(result.time_fs) // 2 :]
    assert abs(pressure.mean()) < 300  # near 0: P_zz → 0 and the lateral lattice (5.30 Å) is near its own

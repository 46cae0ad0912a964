"""MD physics: NVE energy conservation, thermostat, barostat, batching invariance, guard."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
import torch
from ase.calculators.lj import LennardJones as AseLJ
from scipy.optimize import minimize_scalar

from hts_mlff.engine.guard import FailureReason, GuardLimits
from hts_mlff.engine.md import MDProtocol, RunHooks, run_md
from hts_mlff.engine.minimize import fire_minimize
from hts_mlff.engine.observers import SnapshotObserver, ThermoObserver
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, argon, batch


def _run(state, ff, *, temps, pressures=None, keys=None, positions_every_samples=0, **protocol):
    n = state.n_systems
    observers = [ThermoObserver()]
    if positions_every_samples:
        observers.append(SnapshotObserver("positions", every_samples=positions_every_samples))
    return run_md(
        state,
        ff,
        protocol=MDProtocol(**protocol),
        temperature_K=torch.tensor(temps, dtype=torch.float64),
        pressure_bar=torch.tensor(pressures if pressures is not None else [0.0] * n, dtype=torch.float64),
        keys=keys if keys is not None else list(range(100, 100 + n)),
        observers=observers,
    )


@pytest.fixture(scope="module")
def t0_lattice_A() -> float:
    """T = 0 lattice constant of LJ argon with this cutoff, from ASE's calculator."""
    calc = AseLJ(epsilon=EPSILON_EV, sigma=SIGMA_A, rc=CUTOFF_A, smooth=False)

    def energy(a: float) -> float:
        atoms = argon(a=a, repeat=4)
        atoms.calc = calc
        return atoms.get_potential_energy()

    return float(minimize_scalar(energy, bracket=(5.1, 5.3, 5.5), tol=1e-8).x)


def test_nve_total_energy_drift_is_bounded(lj):
    state = batch([argon(), argon(rattle=0.05, seed=1)])
    result = _run(
        state, lj, temps=[90.0, 90.0], ensemble="nve", timestep_fs=5.0, production_steps=2000, sample_every_steps=20
    )
    total = result["total_energy_eV"]
    kinetic = result["kinetic_energy_eV"]
    drift = np.abs(total - total[:, :1]).max(axis=1)
    # Energy exchange between kinetic and potential is large; the total stays put.
    assert (np.ptp(kinetic, axis=1) > 0.5).all()
    assert (drift < 2e-3 * np.abs(total[:, 0])).all(), drift
    assert (drift < 0.05 * np.ptp(kinetic, axis=1)).all()


def test_langevin_holds_per_replica_temperatures(lj):
    temps = [60.0, 120.0]
    state = batch([argon(), argon()])
    result = _run(
        state,
        lj,
        temps=temps,
        ensemble="nvt",
        timestep_fs=10.78,
        equilibration_steps=300,
        production_steps=1200,
        sample_every_steps=10,
        friction_per_fs=0.01,
    )
    measured = result["kinetic_temperature_K"].mean(axis=1)
    np.testing.assert_allclose(measured, temps, rtol=0.06)


def test_langevin_conserves_total_momentum_so_the_centre_of_mass_stays(lj):
    from hts_mlff.engine.state import sum_per_system

    state = batch([argon(repeat=3), argon(repeat=3)])
    masses = state.masses[:, None]
    start = (
        sum_per_system(state.positions * masses, state.system_idx, 2)
        / sum_per_system(state.masses, state.system_idx, 2)[:, None]
    )
    _run(
        state,
        lj,
        temps=[60.0, 90.0],
        ensemble="nvt",
        timestep_fs=10.78,
        production_steps=400,
        sample_every_steps=100,
        friction_per_fs=0.01,
    )
    momentum = sum_per_system(state.velocities * masses, state.system_idx, 2)
    torch.testing.assert_close(momentum, torch.zeros_like(momentum), atol=1e-9, rtol=0)
    end = (
        sum_per_system(state.positions * masses, state.system_idx, 2)
        / sum_per_system(state.masses, state.system_idx, 2)[:, None]
    )
    torch.testing.assert_close(end, start, atol=1e-6, rtol=0)  # no random walk of the whole crystal


def test_npt_holds_per_replica_target_pressure(lj):
    pressures = [500.0, 500.0, 1500.0, 1500.0]  # compressed liquid (at 0 bar, 100 K argon boils)
    state = batch([argon() for _ in pressures])
    result = _run(
        state,
        lj,
        temps=[100.0] * 4,
        pressures=pressures,
        ensemble="npt",
        timestep_fs=10.0,
        equilibration_steps=1000,
        production_steps=1500,
        sample_every_steps=5,
        barostat_time_constant_fs=1000.0,
        compressibility_per_bar=1e-4,
    )
    p = result["virial_pressure_bar"].mean(axis=1)
    v = result["volume_A3"].mean(axis=1)
    assert abs(p[:2].mean() - 500.0) < 150, p
    assert abs(p[2:].mean() - 1500.0) < 150, p
    assert v[2:].mean() < v[:2].mean()


def test_cold_npt_reaches_the_zero_kelvin_lattice_constant(lj, t0_lattice_A):
    state = batch([argon(a=5.45), argon(a=5.10)])
    result = _run(
        state,
        lj,
        temps=[1.0, 1.0],
        ensemble="npt",
        timestep_fs=10.0,
        equilibration_steps=1500,
        production_steps=500,
        sample_every_steps=10,
        barostat_time_constant_fs=2000.0,
        compressibility_per_bar=5e-5,
    )
    lattice = (result["volume_A3"][:, -20:].mean(axis=1) / 64) ** (1 / 3)
    np.testing.assert_allclose(lattice, t0_lattice_A, rtol=1.5e-3)


def test_fire_with_cell_finds_the_zero_kelvin_lattice_constant(lj, t0_lattice_A):
    state = batch([argon(a=5.5, rattle=0.05), argon(a=5.1, rattle=0.05, seed=2)])
    result = fire_minimize(state, lj, fmax_eV_per_A=1e-5, max_steps=3000, relax_cell=True)
    assert bool(result.converged.all())
    lattice = (state.volume.numpy() / 64) ** (1 / 3)
    np.testing.assert_allclose(lattice, t0_lattice_A, rtol=2e-4)


def test_fire_positions_only_converges(lj):
    state = batch([argon(a=5.3, rattle=0.1, seed=3)])
    result = fire_minimize(state, lj, fmax_eV_per_A=1e-4, max_steps=2000)
    assert bool(result.converged.all())
    assert float(lj.forward(state).forces.abs().max()) < 1e-4


@pytest.mark.parametrize("ensemble", ["nvt", "npt"])
def test_batched_equals_single_and_pack_order_does_not_matter(lj, ensemble):
    systems = [argon(rattle=0.05, seed=1), argon(rattle=0.05, seed=2, drop=1), argon(a=5.8, rattle=0.05, seed=3)]
    temps, pressures, keys = [80.0, 100.0, 120.0], [0.0, 200.0, -100.0], [11, 22, 33]
    common = dict(
        ensemble=ensemble,
        timestep_fs=10.0,
        equilibration_steps=50,
        production_steps=200,
        sample_every_steps=25,
        positions_every_samples=8,
    )
    together = _run(batch(systems), lj, temps=temps, pressures=pressures, keys=keys, **common)
    order = [2, 0, 1]
    shuffled = _run(
        batch([systems[k] for k in order]),
        lj,
        temps=[temps[k] for k in order],
        pressures=[pressures[k] for k in order],
        keys=[keys[k] for k in order],
        **common,
    )
    for k in range(3):
        alone = _run(batch([systems[k]]), lj, temps=[temps[k]], pressures=[pressures[k]], keys=[keys[k]], **common)
        j = order.index(k)
        n = len(systems[k])
        for name in ("total_energy_eV", "virial_pressure_bar", "volume_A3"):
            np.testing.assert_array_equal(together[name][k], alone[name][0])
            np.testing.assert_array_equal(shuffled[name][j], alone[name][0])
        np.testing.assert_array_equal(together["final_positions"][k, :n], alone["final_positions"][0, :n])
        np.testing.assert_array_equal(together["positions"][k, :, :n], alone["positions"][0, :, :n])


def test_guard_freezes_a_fused_replica_and_the_rest_go_on(lj):
    bad = argon(rattle=0.05, seed=1)
    bad.positions[1] = bad.positions[0] + [0.9, 0.0, 0.0]  # far inside the repulsive wall
    state = batch([argon(rattle=0.05, seed=2), bad])
    result = _run(
        state,
        lj,
        temps=[90.0, 90.0],
        ensemble="nvt",
        timestep_fs=10.0,
        production_steps=100,
        sample_every_steps=10,
        guard=GuardLimits(max_force_eV_per_A=5.0, min_pair_distance_A=2.0),
    )
    assert result["failure_step"][0] == -1
    assert result["failure_step"][1] == 0
    assert result["failure_reason"][1] in (FailureReason.FORCE_BOUND, FailureReason.ATOMS_FUSED)
    assert np.isfinite(result["total_energy_eV"][0]).all()
    assert np.isnan(result["total_energy_eV"][1]).all()


def test_guard_catches_an_explosion_mid_run(lj):
    state = batch([argon(rattle=0.05, seed=2), argon(rattle=0.05, seed=3)])
    # A 60 fs timestep is far too large for argon: replicas blow up within a few steps.
    result = _run(
        state, lj, temps=[300.0, 300.0], ensemble="nve", timestep_fs=60.0, production_steps=200, sample_every_steps=5
    )
    assert (result["failure_step"] >= 0).all()
    assert all(FailureReason(r) != FailureReason.NONE for r in result["failure_reason"])


def test_checkpoint_resume_is_bit_identical(lj):
    systems = [argon(rattle=0.05, seed=1), argon(rattle=0.05, seed=2)]
    protocol = MDProtocol(
        ensemble="npt", timestep_fs=10.0, equilibration_steps=40, production_steps=120, sample_every_steps=10
    )
    args = dict(
        temperature_K=torch.tensor([90.0, 110.0], dtype=torch.float64),
        pressure_bar=torch.zeros(2, dtype=torch.float64),
        keys=[5, 6],
    )
    full = run_md(batch(systems), lj, protocol=protocol, **args)
    saved = []
    hooks = RunHooks(checkpoint_every_steps=70, on_checkpoint=saved.append)
    run_md(batch(systems), lj, protocol=protocol, hooks=hooks, **args)
    assert saved[0]["step"] == 70
    resumed = run_md(batch(systems), lj, protocol=protocol, hooks=RunHooks(resume_from=saved[0]), **args)
    assert set(full.arrays) == set(resumed.arrays)
    for name in full.arrays:
        np.testing.assert_array_equal(full[name], resumed[name])
    np.testing.assert_array_equal(full["final_cell"], resumed["final_cell"])


def test_a_new_ensemble_is_one_module_and_its_registration(lj, monkeypatch):
    """Berendsen weak coupling written as an ensemble module would be (``init`` + ``step`` over
    the propagator's primitives) and registered in one line: a protocol names it and the pack
    relaxes to each replica's own target, T → T₀ with rate 1/τ."""
    import types

    from hts_mlff.engine import ensembles
    from hts_mlff.engine.integrators import temperature_K

    tau_fs = 200.0

    def step(md, propagator, targets, *, stress):
        ensembles.ENSEMBLES["nve"].step(md, propagator, targets, stress=stress)
        state = md.system
        ratio = targets.temperature_K / temperature_K(state)
        scale = torch.sqrt(1.0 + propagator.timestep_fs / tau_fs * (ratio - 1.0))
        state.velocities = state.velocities * scale[state.system_idx][:, None]

    berendsen = types.SimpleNamespace(init=lambda md, propagator: None, step=step)
    monkeypatch.setitem(ensembles.ENSEMBLES, "berendsen", None)  # removed again after the test
    ensembles.register(berendsen, name="berendsen")
    state = batch([argon(repeat=3, rattle=0.05, seed=1), argon(repeat=3, rattle=0.05, seed=2)])
    result = _run(
        state,
        lj,
        temps=[30.0, 70.0],
        timestep_fs=5.0,
        production_steps=600,
        sample_every_steps=20,
        ensemble="berendsen",
        initial_temperature_K=150.0,  # both replicas start far from their targets
    )
    late = result["kinetic_temperature_K"][:, -10:].mean(axis=1)
    np.testing.assert_allclose(late, [30.0, 70.0], rtol=0.05)


def test_a_force_field_that_asks_for_one_thread_gets_it_on_a_cpu_and_torch_gets_its_threads_back():
    """Graph models of other packages round their reductions by thread count: on a CPU their
    packs run torch on one thread (ForceField.single_threaded_on_cpu), restored afterwards."""
    from hts_mlff.forcefields import LennardJones

    class OneThreadLJ(LennardJones):
        neighbor_layout = "pairs"
        single_threaded_on_cpu = True
        seen: ClassVar[set[int]] = set()

        def forward(self, state, *, neighbors=None, compute_stress=True):
            self.seen.add(torch.get_num_threads())
            return super().forward(state, neighbors=neighbors, compute_stress=compute_stress)

    ff = OneThreadLJ(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _run(batch([argon(repeat=3)]), ff, temps=[20.0], timestep_fs=5.0, production_steps=4, sample_every_steps=2)
        assert ff.seen == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)

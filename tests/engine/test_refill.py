"""Packs that refill: every task of a refilled pack is bit-identical to the task run alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hts_mlff.engine.guard import GuardLimits
from hts_mlff.engine.md import MDProtocol, RunHooks, run_md
from hts_mlff.engine.observers import SnapshotObserver, ThermoObserver, VacancyObserver
from hts_mlff.engine.observers.msd import MSDObserver
from hts_mlff.engine.refill import Refill, ReplicaStart, refill_problem
from hts_mlff.forcefields.lennard_jones import LennardJones
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, argon, batch

GUARD = GuardLimits(max_force_eV_per_A=5.0, min_pair_distance_A=2.0)
#: A float32 reduction through the GNN's layers carries a few units of round-off (ulp) of the
#: largest force; the bound a pack may differ from the task alone by (measured: ~1.5).
ROUNDOFF_ULP = 16


def _systems() -> list:
    """Seven 256-atom argon replicas; two start with atoms fused (they fail at their first check)."""
    systems = [argon(rattle=0.05, seed=k) for k in range(7)]
    for k in (1, 4):
        systems[k].positions[1] = systems[k].positions[0] + [0.9, 0.0, 0.0]
    return systems


def _observers() -> list:
    return [ThermoObserver(), MSDObserver(), SnapshotObserver("positions", every_samples=2)]


def _tasks(n: int, ensemble: str) -> tuple[list[float], list[float], list[int]]:
    temps = [70.0 + 10.0 * k for k in range(n)]
    pressures = [0.0 if ensemble == "nvt" else 100.0 * k for k in range(n)]
    return temps, pressures, [1000 + k for k in range(n)]


def _protocol(ensemble: str, *, production_steps: int = 60, equilibration_steps: int = 15) -> MDProtocol:
    return MDProtocol(
        ensemble=ensemble,
        timestep_fs=10.0,
        equilibration_steps=equilibration_steps,
        production_steps=production_steps,
        sample_every_steps=10,
        guard=GUARD,
        guard_every_steps=5,
    )


def _run_refilled(systems, temps, pressures, keys, *, n_slots, protocol, hooks=None):
    state = batch(systems[:n_slots])

    def load(task: int) -> ReplicaStart:
        atoms = systems[task]
        return ReplicaStart(
            positions_A=torch.as_tensor(atoms.positions, dtype=torch.float64),
            cell_A=torch.as_tensor(np.asarray(atoms.cell), dtype=torch.float64),
        )

    return run_md(
        state,
        _lj(),
        protocol=protocol,
        temperature_K=torch.tensor(temps[:n_slots], dtype=torch.float64),
        pressure_bar=torch.tensor(pressures[:n_slots], dtype=torch.float64),
        keys=keys[:n_slots],
        observers=_observers(),
        hooks=hooks,
        refill=Refill(temperature_K=temps, pressure_bar=pressures, keys=keys, load=load),
    )


def _lj() -> LennardJones:
    return LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A, shift=True)


@pytest.mark.parametrize(("ensemble", "equilibration_steps"), [("nvt", 15), ("npt", 15), ("nvt", 0)])
def test_every_refilled_task_is_bit_identical_to_the_task_alone(ensemble, equilibration_steps):
    systems = _systems()
    temps, pressures, keys = _tasks(len(systems), ensemble)
    protocol = _protocol(ensemble, equilibration_steps=equilibration_steps)
    refilled = _run_refilled(systems, temps, pressures, keys, n_slots=3, protocol=protocol)
    assert refilled["failure_step"].shape == (7,)
    for k, atoms in enumerate(systems):
        alone = run_md(
            batch([atoms]),
            _lj(),
            protocol=protocol,
            temperature_K=torch.tensor([temps[k]], dtype=torch.float64),
            pressure_bar=torch.tensor([pressures[k]], dtype=torch.float64),
            keys=[keys[k]],
            observers=_observers(),
        )
        assert set(alone.arrays) == set(refilled.arrays)
        for name, value in alone.arrays.items():
            np.testing.assert_array_equal(refilled[name][k], value[0], err_msg=f"task {k}: {name}")
    first_check = 0 if equilibration_steps == 0 else 5  # a sample at step 0 is checked
    assert list(refilled["failure_step"][[1, 4]]) == [first_check, first_check]
    assert (refilled["failure_step"][[0, 2, 3, 5, 6]] == -1).all()


def test_a_refilling_pack_resumes_from_a_checkpoint_bit_identically(tmp_path):
    systems = _systems()
    temps, pressures, keys = _tasks(len(systems), "nvt")
    protocol = _protocol("nvt", production_steps=40)
    full = _run_refilled(systems, temps, pressures, keys, n_slots=3, protocol=protocol)
    saved = []
    hooks = RunHooks(checkpoint_every_steps=70, on_checkpoint=saved.append)
    _run_refilled(systems, temps, pressures, keys, n_slots=3, protocol=protocol, hooks=hooks)
    assert saved and saved[0]["step"] == 70 and saved[0]["slots"]["next_task"] > 3  # mid-refill
    torch.save(saved[0], tmp_path / "pack.pt")  # as a worker keeps it, read back as a worker does
    checkpoint = torch.load(tmp_path / "pack.pt", weights_only=True)
    resumed = _run_refilled(
        systems, temps, pressures, keys, n_slots=3, protocol=protocol, hooks=RunHooks(resume_from=checkpoint)
    )
    for name in full.arrays:
        np.testing.assert_array_equal(full[name], resumed[name], err_msg=name)


def test_what_stands_in_the_way_of_a_refill_is_named():
    base = dict(timestep_fs=10.0, production_steps=10, sample_every_steps=5)
    assert refill_problem(MDProtocol(**base), [ThermoObserver()]) is None
    assert "melt_half" in refill_problem(MDProtocol(**base, melt_temperature_K=200.0, melt_steps=5), [ThermoObserver()])
    assert "final_temperature_K" in refill_problem(MDProtocol(**base, final_temperature_K=50.0), [ThermoObserver()])
    assert "one ensemble" in refill_problem(
        MDProtocol(**base, ensemble="nve", equilibration_steps=5), [ThermoObserver()]
    )

    class PerTask(ThermoObserver):
        refillable = False

    assert "PerTask" in refill_problem(MDProtocol(**base), [PerTask()])
    assert refill_problem(MDProtocol(**base), [VacancyObserver([None])]) is None
    with pytest.raises(ValueError, match="cannot refill"):
        systems = _systems()
        temps, pressures, keys = _tasks(len(systems), "nvt")
        _run_refilled(systems, temps, pressures, keys, n_slots=3, protocol=MDProtocol(**base, final_temperature_K=50.0))


def test_vacancy_tracking_of_refilled_windows_matches_the_windows_alone():
    """Vacancy windows (one system, a different empty site per window) through 2 slots."""
    perfect = argon(a=5.3, repeat=4)
    sites = torch.as_tensor(perfect.get_scaled_positions(), dtype=torch.float64)
    systems = []
    for k in range(5):
        atoms = argon(a=5.3, repeat=4, rattle=0.02, seed=k)
        del atoms[[7 * k + 3]]
        systems.append(atoms)
    temps, pressures, keys = [60.0 + 5 * k for k in range(5)], [0.0] * 5, [77 + k for k in range(5)]
    protocol = MDProtocol(ensemble="nvt", timestep_fs=10.0, production_steps=40, sample_every_steps=10)

    def observers(n: int) -> list:
        return [ThermoObserver(), VacancyObserver([sites] * n)]

    def load(task: int) -> ReplicaStart:
        return ReplicaStart(
            positions_A=torch.as_tensor(systems[task].positions, dtype=torch.float64),
            cell_A=torch.as_tensor(np.asarray(systems[task].cell), dtype=torch.float64),
        )

    refilled = run_md(
        batch(systems[:2]),
        _lj(),
        protocol=protocol,
        temperature_K=torch.tensor(temps[:2], dtype=torch.float64),
        pressure_bar=torch.zeros(2, dtype=torch.float64),
        keys=keys[:2],
        observers=observers(2),
        refill=Refill(temperature_K=temps, pressure_bar=pressures, keys=keys, load=load),
    )
    for k in range(5):
        alone = run_md(
            batch([systems[k]]),
            _lj(),
            protocol=protocol,
            temperature_K=torch.tensor([temps[k]], dtype=torch.float64),
            pressure_bar=torch.zeros(1, dtype=torch.float64),
            keys=[keys[k]],
            observers=observers(1),
        )
        for name, value in alone.arrays.items():
            np.testing.assert_array_equal(refilled[name][k], value[0], err_msg=f"window {k}: {name}")
        assert (refilled["vacancy_site"][k] >= 0).all()


def test_the_gnn_refills_on_its_own_neighbour_list():
    """The GNN (torch pair list, rebuilt whole when a slot takes a new task) through 2 slots. Its
    dense layers (BLAS) block by the pack's edge count, so a GNN force in a pack differs from the
    same force alone by round-off of the dtype the network computes in (float32: measured ~1.5 ulp
    of the largest force). Over a run this short (120 fs, far below a Lyapunov time) and with the
    same random numbers, a relative force error ε moves the trajectory by ε of what it does: every
    stored quantity then agrees with the task alone to ε of its own magnitude (positions: of the
    displacement since the start), ε = ``ROUNDOFF_ULP`` units of the compute dtype's round-off."""
    from hts_mlff.forcefields import load
    from tests.conftest import REPO

    gnn = load(REPO / "models" / "model-b-small.pt")
    systems = [argon(repeat=3, rattle=0.05, seed=k) for k in range(3)]
    temps, pressures, keys = [60.0, 80.0, 100.0], [0.0] * 3, [5, 6, 7]
    protocol = MDProtocol(
        ensemble="nvt", timestep_fs=10.0, equilibration_steps=4, production_steps=8, sample_every_steps=4
    )

    def load_task(task: int) -> ReplicaStart:
        return ReplicaStart(
            positions_A=torch.as_tensor(systems[task].positions, dtype=torch.float64),
            cell_A=torch.as_tensor(np.asarray(systems[task].cell), dtype=torch.float64),
        )

    def run(atoms_list, *, refill=None):
        n = len(atoms_list)
        return run_md(
            batch(atoms_list),
            gnn,
            protocol=protocol,
            temperature_K=torch.tensor(temps[:n] if refill else [temps[systems.index(atoms_list[0])]]),
            pressure_bar=torch.zeros(n, dtype=torch.float64),
            keys=keys[:n] if refill else [keys[systems.index(atoms_list[0])]],
            observers=[ThermoObserver()],
            refill=refill,
        )

    # the round-off itself, measured: pack of two against each system alone, before any step
    pair = gnn.forward(batch(systems[:2]), compute_stress=False).forces
    singles = torch.cat([gnn.forward(batch([s]), compute_stress=False).forces for s in systems[:2]])
    ulp = torch.finfo(gnn.compute_dtype).eps * float(singles.abs().max())
    # the premise: round-off, not a bug (bit-equal where the pack's blocking happens to match)
    assert float((pair - singles).abs().max()) <= ROUNDOFF_ULP * ulp
    tolerance = ROUNDOFF_ULP * torch.finfo(gnn.compute_dtype).eps

    refilled = run(systems[:2], refill=Refill(temperature_K=temps, pressure_bar=pressures, keys=keys, load=load_task))
    for k in range(3):
        alone = run([systems[k]])
        for name, value in alone.arrays.items():
            got, want = np.asarray(refilled[name][k]), np.asarray(value[0])
            if name == "final_positions":  # what the trajectory did: the displacement from the start
                got, want = got - systems[k].positions, want - systems[k].positions
            if not np.issubdtype(want.dtype, np.floating):
                np.testing.assert_array_equal(got, want, err_msg=f"task {k}: {name}")
                continue
            scale = float(np.nanmax(np.abs(want))) if np.isfinite(want).any() else 0.0
            np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * scale, err_msg=f"task {k}: {name}")

"""Checks every MLFF adapter passes: a pack of replicas of different sizes, the stress as the
strain derivative of the energy, a pack equal to its replicas alone, and kill -9 then resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

import hts_mlff
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.state import BatchState
from tests.conftest import argon, batch

DATA_VARS = ("kinetic_temperature_K", "total_energy_eV", "virial_pressure_bar", "positions", "final_positions")


def different_sizes(lattice_A: float = 5.4) -> list[Atoms]:
    """Three rattled argon replicas of 32, 48 and 107 atoms (the last with a vacancy)."""
    small = argon(a=lattice_A, repeat=2, rattle=0.08, seed=1)
    mid = bulk("Ar", "fcc", a=lattice_A, cubic=True).repeat((2, 2, 3))
    mid.rattle(0.08, seed=2)
    large = argon(a=lattice_A, repeat=3, rattle=0.08, seed=3, drop=1)
    return [small, mid, large]


def li2o_sizes(lattice_A: float = 4.61) -> list[Atoms]:
    """Three rattled antifluorite Li2O replicas of 24, 36 and 95 atoms (the last missing one Li):
    Li–O bonds of 2 Å, so three-body terms (CHGNet's 3 Å bond graph) are exercised."""
    cell = bulk("OLi2", "fluorite", a=lattice_A, cubic=True)
    out = []
    for k, repeat in enumerate(((1, 1, 2), (1, 1, 3), (2, 2, 2))):
        atoms = cell.repeat(repeat)
        if k == 2:
            del atoms[next(a.index for a in atoms if a.symbol == "Li")]
        atoms.rattle(0.05, seed=10 + k)
        out.append(atoms)
    return out


def stress_by_finite_strain(ff: ForceField, state: BatchState, *, strain: float = 1e-5) -> np.ndarray:
    """(n_systems, 3, 3) σ_ab = (1/V) ∂E/∂ε_ab by central differences of symmetric strains, eV/Å³."""
    volume = state.volume.numpy()
    out = np.zeros((state.n_systems, 3, 3))
    for a in range(3):
        for b in range(a, 3):
            energies = []
            for sign in (1.0, -1.0):
                eps = torch.zeros(3, 3, dtype=state.dtype)
                eps[a, b] += sign * strain / (1 if a == b else 2)
                eps[b, a] += 0 if a == b else sign * strain / 2
                probe = state.clone()
                deform = torch.eye(3, dtype=state.dtype) + eps
                probe.positions = probe.positions @ deform
                probe.cell = probe.cell @ deform
                energies.append(ff(probe, compute_stress=False).energy.numpy())
            out[:, a, b] = out[:, b, a] = (energies[0] - energies[1]) / (2 * strain) / volume
    return out


def assert_pack_equals_replicas_alone(
    ff: ForceField, replicas: list[Atoms], *, rtol: float, dtype: torch.dtype = torch.float64
) -> None:
    """Energies, forces and stresses of the pack equal each replica evaluated alone, to ``rtol``
    of each quantity's own magnitude (the round-off of the model's BLAS on another row count)."""
    pack = ff(batch(replicas, dtype=dtype))
    offset = 0
    for k, atoms in enumerate(replicas):
        alone = ff(batch([atoms], dtype=dtype))
        n = len(atoms)
        for name, together, single in (
            ("energy", pack.energy[k : k + 1], alone.energy),
            ("forces", pack.forces[offset : offset + n], alone.forces),
            ("stress", pack.stress[k : k + 1], alone.stress),
        ):
            scale = single.abs().max().item()
            np.testing.assert_allclose(together.numpy(), single.numpy(), atol=rtol * scale, rtol=0, err_msg=name)
        offset += n


def assert_matches_calculator(
    ff: ForceField, replicas: list[Atoms], calc, *, energy_rtol: float, relative: float
) -> None:
    """The pack's energy, forces and stress equal the package's own ASE calculator on each
    replica: energy to ``energy_rtol``, forces and stress to ``relative`` of their largest."""
    out = ff(batch(replicas))
    offset = 0
    for k, atoms in enumerate(replicas):
        atoms = atoms.copy()
        atoms.calc = calc
        n = len(atoms)
        forces, stress = atoms.get_forces(), atoms.get_stress(voigt=False)
        np.testing.assert_allclose(out.energy[k].item(), atoms.get_potential_energy(), rtol=energy_rtol, atol=0)
        np.testing.assert_allclose(
            out.forces[offset : offset + n].numpy(), forces, rtol=0, atol=relative * np.abs(forces).max()
        )
        np.testing.assert_allclose(out.stress[k].numpy(), stress, rtol=0, atol=relative * np.abs(stress).max())
        offset += n


CAMPAIGN = textwrap.dedent(
    """\
    name: resume
    store: {store}
    systems:
      ar32:
        kind: fcc
        element: Ar
        lattice_A: 5.4
        repeat: [2, 2, 2]
    forcefields:
      mlff: {forcefield}
    protocol:
      ensemble: nvt
      timestep_fs: 5.0
      equilibration_steps: 10
      production_steps: {steps}
      sample_every_steps: 10
      save_positions_every_samples: 2
    sweep:
      temperature_K: [20, 40]
      seed: [0, 1, 2, 3, 4, 5]
    execution:
      pack_size: 2
      dtype: float64
    cluster:
      kind: local
      n_workers: 1
      dashboard_address: ":0"
    """
)


def kill_and_resume_matches(folder: Path, forcefield: dict, *, steps: int = 60, rerun_rtol: float = 0.0) -> None:
    """Run a 12-task campaign of ``forcefield`` from the CLI uninterrupted, then again killed
    with SIGKILL once a pack is stored and resumed: tasks stored before the kill hold the same
    bits, and so do the rerun ones (``rerun_rtol`` 0) — or, for a model whose pack changes its
    round-off (its BLAS blocks a pack's matrices by their size), the same values to
    ``rerun_rtol`` of each quantity's magnitude: the resumed run packs the remaining tasks anew.

    Both runs are the same command on the same machine (same worker threads)."""
    text = lambda store: CAMPAIGN.format(store=store, forcefield=json.dumps(forcefield), steps=steps)  # noqa: E731
    run = lambda path: [sys.executable, "-m", "hts_mlff.cli", "run", "--quiet", "--allow-code", str(path)]  # noqa: E731
    (folder / "ref.yaml").write_text(text("ref.zarr"))
    reference = subprocess.run(run(folder / "ref.yaml"), capture_output=True, timeout=600)
    assert reference.returncode == 0, reference.stdout.decode() + reference.stderr.decode()

    path = folder / "killed.yaml"
    path.write_text(text("killed.zarr"))
    done_dir = folder / "killed.zarr" / "_hts" / "done"
    command = run(path)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if done_dir.is_dir() and len(list(done_dir.glob("*.json"))) >= 1:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored_before_kill = {marker.stem for marker in done_dir.glob("*.json")}
    n_at_kill = len(stored_before_kill)
    assert 0 < n_at_kill < 12, f"the kill should land mid-campaign ({n_at_kill} of 12 stored)"

    again = subprocess.run(command, capture_output=True, timeout=600)
    assert again.returncode == 0, again.stdout.decode() + again.stderr.decode()
    ref = hts_mlff.open_campaign(folder / "ref.zarr")
    resumed = hts_mlff.open_campaign(folder / "killed.zarr")
    assert list(ref.task_id.values) == list(resumed.task_id.values)
    assert set(resumed.status.values) == {"done"}
    before = np.isin(ref.task_id.values, sorted(stored_before_kill))
    for name in DATA_VARS:
        expected, got = ref[name].values, resumed[name].values
        np.testing.assert_array_equal(expected[before], got[before], err_msg=f"{name} (stored before the kill)")
        scale = np.nanmax(np.abs(expected[~before]))
        np.testing.assert_allclose(got[~before], expected[~before], rtol=0, atol=rerun_rtol * scale, err_msg=name)

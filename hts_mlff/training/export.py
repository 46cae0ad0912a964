"""Training frames of a store as extended XYZ, labelled by a reference force field, for the
trainers of other packages (``mace_run_train``, ``nequip-train``).

A store holds each frame's positions, cell, species and the forces of the force field it ran
with; other trainers also want energies and stresses. :func:`labelled_frames` evaluates the
reference (the campaign's force field of choice: Lennard-Jones for the seeds' argon) on every
frame, batched, and :func:`write_extxyz` writes them with the keys ``REF_energy`` (eV),
``REF_forces`` (eV/Å) and ``REF_stress`` (eV/Å³, ASE's sign, Voigt xx yy zz yz xz xy) that
``mace_run_train --energy_key REF_energy --forces_key REF_forces --stress_key REF_stress``
reads (the ``REF_`` prefix keeps ASE from taking them for a calculator's results).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.state import state_from_arrays
from hts_mlff.training.frames import Frame

ENERGY_KEY, FORCES_KEY, STRESS_KEY = "REF_energy", "REF_forces", "REF_stress"


def labelled_frames(frames: list[Frame], reference: ForceField, *, frames_per_batch: int = 16) -> list:
    """ASE ``Atoms`` of every frame with the reference's energy, forces and stress in
    ``info``/``arrays`` (float64, on the CPU); the frame's label in ``info['label']``."""
    from ase import Atoms
    from ase.data import atomic_masses

    out = []
    for start in range(0, len(frames), frames_per_batch):
        chunk = frames[start : start + frames_per_batch]
        state = state_from_arrays(
            [f.positions for f in chunk],
            cells=[f.cell for f in chunk],
            atomic_numbers=[f.atomic_numbers for f in chunk],
            masses=[atomic_masses[f.atomic_numbers] for f in chunk],
            device=torch.device("cpu"),
            dtype=torch.float64,
        )
        result = reference(state, compute_stress=True)
        for k, frame in enumerate(chunk):
            sl = state.system_slice(k)
            atoms = Atoms(numbers=frame.atomic_numbers, positions=frame.positions, cell=frame.cell, pbc=True)
            stress = result.stress[k].numpy()
            atoms.info[ENERGY_KEY] = float(result.energy[k])
            atoms.info[STRESS_KEY] = np.array(
                [stress[0, 0], stress[1, 1], stress[2, 2], stress[1, 2], stress[0, 2], stress[0, 1]]
            )
            atoms.info["label"] = frame.label
            atoms.arrays[FORCES_KEY] = result.forces[sl].numpy().copy()
            out.append(atoms)
    return out


def write_extxyz(atoms_list: list, path: Path) -> Path:
    """Write labelled frames as one extended XYZ file (overwrites ``path``)."""
    from ase.io import write

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, atoms_list, format="extxyz")
    return path

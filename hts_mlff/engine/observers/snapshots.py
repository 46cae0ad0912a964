"""Thinned per-atom snapshots: unwrapped positions (with the cell), velocities or forces.

Every ``every``-th sample keeps the (max_atoms, 3) array of each replica; positions also keep
the (3, 3) cell of that sample, so stored frames are self-contained (training sets, force
parity, MSD). Units: Å, Å/fs, eV/Å.
"""

from __future__ import annotations

import numpy as np

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.observers.base import Observer, sample_rows, snapshot_count
from hts_mlff.engine.state import BatchState

#: field → the sample dim of its snapshots.
SNAPSHOT_DIMS = {"positions": "position_time_fs", "velocities": "velocity_time_fs", "forces": "force_time_fs"}


class SnapshotObserver(Observer):
    """(n_systems, n_snapshots, max_atoms, 3) float64 of ``field`` every ``every`` samples."""

    def __init__(self, field: str, *, every_samples: int) -> None:
        super().__init__()
        if field not in SNAPSHOT_DIMS:
            raise ValueError(f"no snapshots of {field!r}; one of {sorted(SNAPSHOT_DIMS)}")
        if every_samples <= 0:
            raise ValueError("every_samples must be positive")
        self.field = field
        self.every = every_samples
        self.quantities = (field, "cells") if field == "positions" else (field,)

    def dimension_sizes(self, *, n_frames: int) -> dict[str, int]:
        return {SNAPSHOT_DIMS[self.field]: snapshot_count(n_frames, self.every)}

    def coordinates(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        return {SNAPSHOT_DIMS[self.field]: np.asarray(time_fs[:: self.every], dtype=float)}

    def start(self, state: BatchState, *, n_frames: int) -> None:
        n, n_snap = state.n_systems, snapshot_count(n_frames, self.every)
        max_atoms = int(state.atoms_per_system.max())
        self.buffers = {self.field: np.full((n, n_snap, max_atoms, 3), np.nan)}
        if self.field == "positions":
            self.buffers["cells"] = np.full((n, n_snap, 3, 3), np.nan)
        self._local = state.local_atom_index().cpu().numpy()
        self._sysidx = state.system_idx.cpu().numpy()

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        rows, frames = sample_rows(frame, alive)
        keep = frames % self.every == 0
        rows, snaps = rows[keep], frames[keep] // self.every
        if rows.size == 0:
            return
        tensor = {"positions": state.positions, "velocities": state.velocities, "forces": output.forces}[self.field]
        snap_of = np.full(state.n_systems, -1, dtype=np.int64)
        snap_of[rows] = snaps
        atoms = snap_of[self._sysidx] >= 0
        data = tensor.detach().cpu().double().numpy()[atoms]
        self.buffers[self.field][self._sysidx[atoms], snap_of[self._sysidx[atoms]], self._local[atoms]] = data
        if "cells" in self.buffers:
            self.buffers["cells"][rows, snaps] = state.cell.detach().cpu().double().numpy()[rows]

"""Equilibrium lattice sites and the primitive-cell map of a crystal, for spectral energy density.

The site of each atom is its unwrapped position averaged over every production sample (Å): the
finite-temperature equilibrium position in the run's own cell, so the phases exp(i k·r₀) of the
SED (seed eq. 7) use the lattice the trajectory actually vibrates about. ``basis_index`` says
which atom of the primitive cell each atom is (0 for every atom of a Bravais lattice such as
FCC argon; for a structure file repeated ``repeat`` times, the atom's index in the file's cell).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.observers.base import Observer, sample_rows
from hts_mlff.engine.state import BatchState


class LatticeSiteObserver(Observer):
    """``lattice_site_A`` (n_systems, max_atoms, 3) float64 and ``basis_index`` (n_systems, max_atoms) int32.

    Args:
        cell_repeats: per replica, None for a Bravais lattice (one atom per primitive cell) or
            the repetitions of a unit cell whose atoms ASE's ``repeat`` laid out copy by copy
            (atoms per cell = replica atoms / product of repeats); None for all: Bravais.
    """

    quantities = ("lattice_site_A", "basis_index")
    per_atom_buffers = ("position_sum_A",)

    def __init__(self, cell_repeats: Sequence[tuple[int, int, int] | None] | None = None) -> None:
        super().__init__()
        self.cell_repeats = list(cell_repeats) if cell_repeats is not None else None

    def start(self, state: BatchState, *, n_frames: int) -> None:
        self._sysidx = state.system_idx.cpu().numpy()
        self._local = state.local_atom_index().cpu().numpy()
        counts = state.atoms_per_system.cpu().numpy()
        self._max_atoms = int(counts.max())
        repeats = self.cell_repeats or [None] * state.n_systems
        self._basis_sizes = np.array(
            [1 if r is None else max(1, int(n) // int(np.prod(r))) for r, n in zip(repeats, counts, strict=True)]
        )
        self.buffers = {
            "position_sum_A": np.zeros((state.n_atoms, 3)),
            "n_samples": np.zeros(state.n_systems),
        }

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        rows, _ = sample_rows(frame, alive)
        sampling = np.zeros(state.n_systems, dtype=bool)
        sampling[rows] = True
        positions = state.positions.detach().cpu().double().numpy()
        keep = sampling[self._sysidx]
        self.buffers["position_sum_A"][keep] += positions[keep]
        self.buffers["n_samples"][sampling] += 1

    def results(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        n_systems = len(self.buffers["n_samples"])
        sites = np.full((n_systems, self._max_atoms, 3), np.nan)
        count = self.buffers["n_samples"][self._sysidx][:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            sites[self._sysidx, self._local] = np.where(count > 0, self.buffers["position_sum_A"] / count, np.nan)
        basis = np.full((n_systems, self._max_atoms), -1, dtype=np.int32)
        basis[self._sysidx, self._local] = self._local % self._basis_sizes[self._sysidx]
        return {"lattice_site_A": sites, "basis_index": basis}

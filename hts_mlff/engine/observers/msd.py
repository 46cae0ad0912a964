"""Mean squared displacement from the production start, on the fly (for runs too long to store positions).

MSD(t) = (1/N) Σ_i |r_i(t) − r_i(0)|² over the replica's atoms, from the engine's unwrapped
positions, with t = 0 the first production sample (Å²). It is the single-origin MSD: for D,
the stored-positions path (:func:`hts_mlff.analysis.diffusion.msd`, all time origins) has less
noise per trajectory, but needs every atom's position at every snapshot on disk; this needs one
number per sample. Seeds: diffusion coefficients of the liquid (D = MSD/6t at long t).
"""

from __future__ import annotations

import numpy as np

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.observers.base import Observer, sample_rows
from hts_mlff.engine.state import BatchState


class MSDObserver(Observer):
    """``msd_A2``: (n_systems, n_frames) float64, Å²; NaN where a replica has failed."""

    quantities = ("msd_A2",)
    per_atom_buffers = ("origin_A",)

    def start(self, state: BatchState, *, n_frames: int) -> None:
        self.buffers = {
            "msd_A2": np.full((state.n_systems, n_frames), np.nan),
            "origin_A": np.full((state.n_atoms, 3), np.nan),  # positions at frame 0 (kept for resume)
        }
        self._sysidx = state.system_idx.cpu().numpy()
        self._counts = np.bincount(self._sysidx, minlength=state.n_systems)

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        rows, frames = sample_rows(frame, alive)
        positions = state.positions.detach().cpu().double().numpy()
        first = np.zeros(len(self._counts), dtype=bool)
        first[rows[frames == 0]] = True
        if first.any():
            atoms = first[self._sysidx]
            self.buffers["origin_A"][atoms] = positions[atoms]
        squared = ((positions - self.buffers["origin_A"]) ** 2).sum(axis=1)
        per_system = np.bincount(self._sysidx, weights=squared, minlength=len(self._counts)) / self._counts
        self.buffers["msd_A2"][rows, frames] = per_system[rows]

    def results(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        return {"msd_A2": self.buffers["msd_A2"]}

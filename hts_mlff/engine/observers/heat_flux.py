"""Heat current at every sample, for Green–Kubo thermal conductivity.

J(t) = d/dt Σ_i r_i e_i (eV·Å/fs per replica, the extensive current, not divided by V), from
the force field's own energy partition (:meth:`ForceField.heat_current`; pair potentials). The
conductivity follows from its autocorrelation (:mod:`hts_mlff.analysis.green_kubo`):
κ = 1/(3 V k_B T²) ∫₀^∞ ⟨J(0)·J(t)⟩ dt. Cost: on the compiled path a few per-atom
operations (the force pass of a sample step keeps the per-atom energies and virials); on the
torch path one extra pair pass per sample.
"""

from __future__ import annotations

import numpy as np

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.observers.base import Observer, sample_rows
from hts_mlff.engine.state import BatchState


class HeatFluxObserver(Observer):
    """``heat_current_eV_A_per_fs``: (n_systems, n_frames, 3) float64; NaN where a replica failed."""

    quantities = ("heat_current_eV_A_per_fs",)

    def attach(self, forcefield: ForceField, *, neighbors: NeighborList | None = None) -> None:
        if not forcefield.has_heat_current:
            raise ValueError(
                f"analyses: heat_flux needs a force field with a per-atom energy partition; "
                f"{type(forcefield).__name__} has none (Green–Kubo runs with pair potentials: lennard_jones)"
            )
        self._forcefield = forcefield
        self._neighbors = neighbors

    def start(self, state: BatchState, *, n_frames: int) -> None:
        self.buffers = {"heat_current_eV_A_per_fs": np.full((state.n_systems, n_frames, 3), np.nan)}

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        rows, frames = sample_rows(frame, alive)
        current = (
            self._forcefield.heat_current(state, output=output, neighbors=self._neighbors)
            .detach()
            .cpu()
            .double()
            .numpy()
        )
        self.buffers["heat_current_eV_A_per_fs"][rows, frames] = current[rows]

"""Observers: reduce the running state on the fly into fixed-size per-replica records.

Thermodynamics at every sample (time, temperature, potential/kinetic/total energy,
pressure from the virial, volume) and, optionally, thinned unwrapped positions (with the
cell at the same samples), velocities and forces (forces make a reference campaign a
training set). Buffers are numpy arrays allocated once for the whole run, padded to the
largest replica in the pack (NaN where a replica has fewer atoms or has failed).
"""

from __future__ import annotations

import numpy as np
import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.integrators import kinetic_energy_eV, pressure_bar, temperature_K
from hts_mlff.engine.state import BatchState
from hts_mlff.engine.wigner_seitz import vacant_site

#: Per-sample scalar series, name → unit.
THERMO_FIELDS: dict[str, str] = {
    "kinetic_temperature_K": "K",
    "potential_energy_eV": "eV",
    "kinetic_energy_eV": "eV",
    "total_energy_eV": "eV",
    "virial_pressure_bar": "bar",
    "volume_A3": "Å^3",
}


class Recorder:
    """Per-replica sample buffers.

    Attributes:
        thermo: name → (n_systems, n_frames) float64.
        positions, velocities, forces: (n_systems, n_snapshots, max_atoms, 3) float64 or None
            (Å, Å/fs, eV/Å).
        cells: (n_systems, n_position_snapshots, 3, 3) Å, with ``positions``.
        vacancy_site, n_vacant: (n_systems, n_frames) int32, the first empty Wigner–Seitz site
            and the number of empty sites at every sample (−1: not tracked or failed).
    """

    def __init__(
        self,
        state: BatchState,
        *,
        n_frames: int,
        positions_every_samples: int = 0,
        velocities_every_samples: int = 0,
        forces_every_samples: int = 0,
        vacancy_sites: list[torch.Tensor | None] | None = None,
    ) -> None:
        n = state.n_systems
        self.n_frames = n_frames
        self.thermo = {name: np.full((n, n_frames), np.nan) for name in THERMO_FIELDS}
        self.max_atoms = int(state.atoms_per_system.max())
        self.positions_every = positions_every_samples
        self.velocities_every = velocities_every_samples
        self.positions = self._snapshot_buffer(n, positions_every_samples)
        self.velocities = self._snapshot_buffer(n, velocities_every_samples)
        self.forces_every = forces_every_samples
        self.forces = self._snapshot_buffer(n, forces_every_samples)
        self.cells = None if self.positions is None else np.full((*self.positions.shape[:2], 3, 3), np.nan)
        # Wigner–Seitz vacancy tracking: reference sites per replica as fractional
        # coordinates of its cell (they follow the cell under NPT); None: not tracked.
        self.vacancy_sites = vacancy_sites
        self.vacancy_site = None if vacancy_sites is None else np.full((n, n_frames), -1, dtype=np.int32)
        self.n_vacant = None if vacancy_sites is None else np.full((n, n_frames), -1, dtype=np.int32)
        self._local = state.local_atom_index().cpu().numpy()
        self._sysidx = state.system_idx.cpu().numpy()

    def _snapshot_buffer(self, n_systems: int, every: int) -> np.ndarray | None:
        if every <= 0:
            return None
        n_snap = (self.n_frames - 1) // every + 1
        return np.full((n_systems, n_snap, self.max_atoms, 3), np.nan)

    def record(self, state: BatchState, output: ForceOutput, *, frame: int, active: torch.Tensor) -> None:
        """Store sample ``frame``; failed replicas (``active`` False) get NaN."""
        ke = kinetic_energy_eV(state)
        values = {
            "kinetic_temperature_K": temperature_K(state, ke),
            "potential_energy_eV": output.energy.detach(),
            "kinetic_energy_eV": ke,
            "total_energy_eV": output.energy.detach() + ke,
            "virial_pressure_bar": pressure_bar(state, stress=output.stress.detach(), kinetic_eV=ke),
            "volume_A3": state.volume,
        }
        alive = active.cpu().numpy()
        for name, value in values.items():
            self.thermo[name][:, frame] = np.where(alive, value.cpu().double().numpy(), np.nan)
        atom_alive = alive[self._sysidx][:, None]
        for buffer, every, tensor in (
            (self.positions, self.positions_every, state.positions),
            (self.velocities, self.velocities_every, state.velocities),
            (self.forces, self.forces_every, output.forces),
        ):
            if buffer is not None and frame % every == 0:
                data = np.where(atom_alive, tensor.detach().cpu().double().numpy(), np.nan)
                buffer[self._sysidx, frame // every, self._local] = data
        if self.vacancy_sites is not None:
            self._record_vacancies(state, frame=frame, alive=alive)
        if self.cells is not None and frame % self.positions_every == 0:
            cells = state.cell.detach().cpu().double().numpy()
            self.cells[:, frame // self.positions_every] = np.where(alive[:, None, None], cells, np.nan)

    def _record_vacancies(self, state: BatchState, *, frame: int, alive: np.ndarray) -> None:
        offsets = state.system_offsets().tolist()
        for s, sites in enumerate(self.vacancy_sites):
            if sites is None or not alive[s]:
                continue
            positions = state.positions[offsets[s] : offsets[s + 1]].detach()
            cell = state.cell[s].detach()
            site, count = vacant_site(positions, sites.to(positions) @ cell, cell)
            self.vacancy_site[s, frame] = site
            self.n_vacant[s, frame] = count

    def state_dict(self) -> dict[str, np.ndarray]:
        data = {f"thermo/{k}": v for k, v in self.thermo.items()}
        if self.positions is not None:
            data["positions"] = self.positions
        if self.velocities is not None:
            data["velocities"] = self.velocities
        if self.forces is not None:
            data["forces"] = self.forces
        if self.cells is not None:
            data["cells"] = self.cells
        if self.vacancy_site is not None:
            data["vacancy_site"] = self.vacancy_site
            data["n_vacant"] = self.n_vacant
        return data

    def load_state_dict(self, data: dict[str, np.ndarray]) -> None:
        for name in self.thermo:
            self.thermo[name][...] = data[f"thermo/{name}"]
        if self.positions is not None:
            self.positions[...] = data["positions"]
        for name in ("velocities", "forces", "cells", "vacancy_site", "n_vacant"):
            buffer = getattr(self, name)
            if buffer is not None and name in data:
                buffer[...] = data[name]

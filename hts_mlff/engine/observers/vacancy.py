"""Wigner–Seitz vacancy tracking at every sample (solid-state seed §2.3).

Per replica, the first empty site of its reference lattice and the number of empty sites at
every sample; at the end, the number of vacancy jumps and the time of the first (counting
stops where the crystal lost its lattice: :func:`hts_mlff.engine.wigner_seitz.count_jumps`).
"""

from __future__ import annotations

import numpy as np
import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.observers.base import Observer, sample_rows
from hts_mlff.engine.state import BatchState
from hts_mlff.engine.wigner_seitz import count_jumps, vacant_site


class VacancyObserver(Observer):
    """``vacancy_site``, ``n_vacant``: (n_systems, n_frames) int32 (−1: not tracked or failed);
    ``vacancy_jumps`` (n_systems,) int32 and ``first_vacancy_jump_fs`` (n_systems,) fs (NaN: none).

    Args:
        sites: per replica, (m, 3) reference sites in fractional coordinates of its cell (they
            follow the cell under NPT); None: that replica is not tracked.
    """

    quantities = ("vacancy_site", "n_vacant", "vacancy_jumps", "first_vacancy_jump_fs")

    def __init__(self, sites: list[torch.Tensor | None]) -> None:
        super().__init__()
        self.sites = sites

    def start(self, state: BatchState, *, n_frames: int) -> None:
        if len(self.sites) != state.n_systems:
            raise ValueError(f"{len(self.sites)} site lists for {state.n_systems} replicas")
        n = state.n_systems
        self.buffers = {
            "vacancy_site": np.full((n, n_frames), -1, dtype=np.int32),
            "n_vacant": np.full((n, n_frames), -1, dtype=np.int32),
        }

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        offsets = state.system_offsets().tolist()
        rows, frames = sample_rows(frame, alive)
        for s, frame in zip(rows.tolist(), frames.tolist(), strict=True):
            sites = self.sites[s]
            if sites is None:
                continue
            positions = state.positions[offsets[s] : offsets[s + 1]].detach()
            cell = state.cell[s].detach()
            site, count = vacant_site(positions, sites.to(positions) @ cell, cell)
            self.buffers["vacancy_site"][s, frame] = site
            self.buffers["n_vacant"][s, frame] = count

    def results(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        jumps, first_frame = count_jumps(self.buffers["vacancy_site"], self.buffers["n_vacant"])
        first = np.where(first_frame >= 0, time_fs[np.maximum(first_frame, 0)], np.nan)
        return {**self.buffers, "vacancy_jumps": jumps.astype(np.int32), "first_vacancy_jump_fs": first}

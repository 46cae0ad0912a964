"""Verlet neighbour list with a skin over a batch of periodic systems.

Pairs are found per system with ``vesin`` (a cell-list C++ library) within
``cutoff_A + skin_A`` and kept until some atom of some system has moved more than half
the skin (cell deformation included). Each pair appears once (a half list) in a canonical
order — i < j, then by periodic shift — so the order in which forces are summed never
depends on when the list was rebuilt, nor on which other systems share the pack: a
replica's trajectory is bit-identical on CPU whatever pack it runs in.
"""

from __future__ import annotations

import numpy as np
import torch
from vesin import NeighborList as _VesinList

from hts_mlff.engine.state import BatchState, max_per_system


def _canonical_pairs(i: np.ndarray, j: np.ndarray, shifts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Orient every pair as i < j (i == j: first non-zero shift positive) and sort by (i, j, shift)."""
    first_nonzero = np.where(shifts[:, 0] != 0, shifts[:, 0], np.where(shifts[:, 1] != 0, shifts[:, 1], shifts[:, 2]))
    flip = (i > j) | ((i == j) & (first_nonzero < 0))
    i2 = np.where(flip, j, i)
    j2 = np.where(flip, i, j)
    s2 = np.where(flip[:, None], -shifts, shifts)
    if len(i2) == 0:
        return i2, j2, s2
    n = int(max(i2.max(), j2.max())) + 1
    low = s2.min(axis=0)
    span = int((s2.max(axis=0) - low).max()) + 1
    if n * n * span**3 < 2**62:  # one integer sort key
        code = (i2 * n + j2) * span**3
        code += ((s2[:, 0] - low[0]) * span + (s2[:, 1] - low[1])) * span + (s2[:, 2] - low[2])
        order = np.argsort(code)
    else:
        order = np.lexsort((s2[:, 2], s2[:, 1], s2[:, 0], j2, i2))
    return i2[order], j2[order], s2[order]


def system_pairs(
    positions: np.ndarray, *, cell: np.ndarray, cutoff_A: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half pair list of one periodic system.

    Args:
        positions: (n, 3) Å, any image (unwrapped is fine).
        cell: (3, 3) Å, rows are lattice vectors.
        cutoff_A: pair cutoff.

    Returns:
        i, j: (n_pairs,) int64 atom indices; shifts: (n_pairs, 3) int64 such that the
        pair vector is ``positions[j] - positions[i] + shifts @ cell``.
    """
    frac = np.linalg.solve(cell.T, positions.T).T
    image = np.floor(frac)
    wrapped = (frac - image) @ cell
    calculator = _VesinList(cutoff=float(cutoff_A), full_list=False)
    i, j, shifts = calculator.compute(points=wrapped, box=cell, periodic=True, quantities="ijS")
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    # Undo the wrapping so the shifts apply to the unwrapped positions.
    shifts = shifts.astype(np.int64) + image[i].astype(np.int64) - image[j].astype(np.int64)
    return _canonical_pairs(i, j, shifts)


class NeighborList:
    """Half pair list within ``cutoff_A + skin_A`` for every system of a batch.

    Attributes (after :meth:`update`):
        pair_i, pair_j: (n_pairs,) int64 global atom indices.
        pair_shift: (n_pairs, 3) integer cell shifts (state dtype).
        pair_system: (n_pairs,) int64 system of each pair.
        n_builds: number of (whole-batch) rebuilds so far.
    """

    def __init__(self, cutoff_A: float, *, skin_A: float = 1.0) -> None:
        if cutoff_A <= 0 or skin_A < 0:
            raise ValueError("cutoff_A must be positive and skin_A non-negative")
        self.cutoff_A = float(cutoff_A)
        self.skin_A = float(skin_A)
        self.n_builds = 0
        self._ref_positions: torch.Tensor | None = None
        self._ref_cell_inv: torch.Tensor | None = None
        self._shift_cart: torch.Tensor | None = None
        self._shift_cell: torch.Tensor | None = None

    def needs_rebuild(self, state: BatchState) -> bool:
        """True when pairs within the cutoff may be missing from the list."""
        if self._ref_positions is None or self._ref_positions.shape != state.positions.shape:
            return True
        # Deformation since the build: F = cell_ref⁻¹ · cell (row-vector convention).
        deform = self._ref_cell_inv @ state.cell  # (n_systems, 3, 3)
        strain = torch.linalg.matrix_norm(deform - torch.eye(3, dtype=state.dtype, device=state.device), ord=2)
        affine_ref = torch.einsum("ai,aij->aj", self._ref_positions, deform[state.system_idx])
        moved = torch.linalg.vector_norm(state.positions - affine_ref, dim=1)
        max_moved = max_per_system(moved, state.system_idx, state.n_systems)
        budget = 2.0 * max_moved + strain * (self.cutoff_A + self.skin_A)
        return bool((budget > self.skin_A).any() | ~torch.isfinite(budget).all())

    def update(self, state: BatchState) -> bool:
        """Rebuild if needed; attach the list to ``state``. Returns True on a rebuild."""
        rebuilt = False
        if self.needs_rebuild(state):
            self.build(state)
            rebuilt = True
        state.neighbors = self
        return rebuilt

    def build(self, state: BatchState) -> None:
        """Rebuild the pair list of every system from the current positions and cells."""
        positions = state.positions.detach().cpu().double().numpy()
        cells = state.cell.detach().cpu().double().numpy()
        offsets = state.system_offsets().tolist()
        all_i, all_j, all_s, all_sys = [], [], [], []
        for system in range(state.n_systems):
            lo, hi = offsets[system], offsets[system + 1]
            pos = positions[lo:hi]
            if not np.isfinite(pos).all():  # a failed replica; the guard freezes it
                continue
            i, j, s = system_pairs(pos, cell=cells[system], cutoff_A=self.cutoff_A + self.skin_A)
            all_i.append(i + lo)
            all_j.append(j + lo)
            all_s.append(s)
            all_sys.append(np.full(len(i), system, dtype=np.int64))

        def cat(parts, shape):
            return np.concatenate(parts) if parts else np.zeros(shape, dtype=np.int64)

        dev = state.device
        self.pair_i = torch.as_tensor(cat(all_i, (0,)), device=dev)
        self.pair_j = torch.as_tensor(cat(all_j, (0,)), device=dev)
        self.pair_shift = torch.as_tensor(cat(all_s, (0, 3)), device=dev).to(state.dtype)
        self.pair_system = torch.as_tensor(cat(all_sys, (0,)), device=dev)
        self._ref_positions = state.positions.detach().clone()
        self._ref_cell_inv = torch.linalg.inv(state.cell.detach())
        self._shift_cart = None
        self.n_builds += 1

    def pair_vectors(self, state: BatchState) -> torch.Tensor:
        """(n_pairs, 3) vectors r_j − r_i + shift·cell in Å (differentiable in positions)."""
        cell = state.cell
        if self._shift_cart is None or not torch.equal(self._shift_cell, cell) or cell.requires_grad:
            self._shift_cart = torch.einsum("pk,pkl->pl", self.pair_shift, cell[self.pair_system])
            self._shift_cell = cell.detach().clone()
        return state.positions[self.pair_j] - state.positions[self.pair_i] + self._shift_cart


def neighbors_for(state: BatchState, *, cutoff_A: float) -> NeighborList:
    """The pair list attached to ``state`` if it covers ``cutoff_A``, else a fresh one."""
    existing = state.neighbors
    if existing is not None and existing.cutoff_A >= cutoff_A - 1e-12 and not existing.needs_rebuild(state):
        return existing
    fresh = NeighborList(cutoff_A, skin_A=0.0)
    fresh.build(state)
    return fresh

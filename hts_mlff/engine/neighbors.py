"""Verlet neighbour lists with a skin over a batch of periodic systems: one interface, two layouts.

A list covers ``cutoff_A + skin_A`` and is kept until some atom of some system has moved more
than half the skin (cell deformation included). It is an argument: whoever integrates or
relaxes a state makes one (:func:`neighbor_list_for` picks the layout once, from the device and
what the force field reads), updates it, and hands it to the force field and the stability
guard (``forward(state, neighbors=…)``). A force field called without one builds its own
(:func:`pairs_for`).

* :class:`PairList` — the half pair list as index tensors, found per system with ``vesin`` (a
  cell-list C++ library) or, for small cells, by minimum image on the state's device; the torch
  path of every force field.
* :class:`RowList` — per-atom neighbour rows built by the compiled builders
  (:mod:`hts_mlff.engine.kernels.neighbor_matrix`) and rebuilt per system, for force fields with a
  row kernel; it serves the same half pair list, derived from the rows, to anything else (a GNN).

Either way each pair appears once in a canonical order — i < j, then by periodic shift — so
the order in which forces are summed never depends on when the list was rebuilt, nor on which
other systems share the pack: a replica's trajectory is bit-identical whatever pack it runs in.
"""

from __future__ import annotations

import numpy as np
import torch
from vesin import NeighborList as _VesinList

from hts_mlff.engine.state import BatchState, max_per_system

LAYOUTS = ("rows", "pairs")


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


def _raw_pairs(wrapped: np.ndarray, *, cell: np.ndarray, cutoff_A: float) -> tuple[np.ndarray, ...]:
    calculator = _VesinList(cutoff=float(cutoff_A), full_list=False)
    i, j, shifts = calculator.compute(points=wrapped, box=cell, periodic=True, quantities="ijS")
    return i.astype(np.int64), j.astype(np.int64), shifts.astype(np.int64)


def _wrap(positions: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fold (n, 3) positions into their (n, 3, 3) cells; returns (wrapped, integer image)."""
    frac = np.einsum("ai,aij->aj", positions, np.linalg.inv(cells))
    image = np.floor(frac)
    return np.einsum("ai,aij->aj", frac - image, cells), image.astype(np.int64)


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
    wrapped, image = _wrap(positions, np.broadcast_to(cell, (len(positions), 3, 3)))
    i, j, shifts = _raw_pairs(wrapped, cell=cell, cutoff_A=cutoff_A)
    # Undo the wrapping so the shifts apply to the unwrapped positions.
    return _canonical_pairs(i, j, shifts + image[i] - image[j])


BRUTE_FORCE_MAX_ATOMS = 1024
BRUTE_FORCE_MAX_CANDIDATES = 4_000_000


#: Range (Å) of the engine's own list for a force field that builds its own neighbours and
#: declares no range (``cutoff_A`` 0, e.g. an ASE calculator): the list then serves the
#: stability guard's closest-pair check only.
MIN_LIST_RANGE_A = 3.0


def list_range_A(cutoff_A: float, *, min_pair_distance_A: float = 0.0) -> float:
    """The range the engine's neighbour list must cover: the force field's cutoff, or (when it
    declares none) :data:`MIN_LIST_RANGE_A`, never less than the guard's closest-pair distance."""
    return (
        max(float(cutoff_A), float(min_pair_distance_A))
        if cutoff_A > 0
        else max(MIN_LIST_RANGE_A, float(min_pair_distance_A))
    )


def minimum_image_ok(cell: np.ndarray, cutoff_A: float) -> bool:
    """True when every pair within ``cutoff_A`` has a single periodic image (cell widths > 2 r_c)."""
    volume = abs(np.linalg.det(cell))
    widths = [volume / np.linalg.norm(np.cross(cell[a], cell[b])) for a, b in ((1, 2), (2, 0), (0, 1))]
    return min(widths) > 2.0 * cutoff_A


_TRIU_CACHE: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor]] = {}


def _triu(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    key = (n, str(device))
    if key not in _TRIU_CACHE:
        iu, ju = torch.triu_indices(n, n, offset=1, device=device)
        _TRIU_CACHE[key] = (iu, ju)
    return _TRIU_CACHE[key]


def brute_force_pairs(
    positions: torch.Tensor, cells: torch.Tensor, *, cutoff_A: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Half pair lists of G equal-sized small systems by minimum image, all at once.

    Args:
        positions: (G, n, 3) unwrapped positions in Å.
        cells: (G, 3, 3) Å; each must satisfy :func:`minimum_image_ok` for ``cutoff_A``.

    Returns:
        g, i, j: (n_pairs,) int64 system-in-group and atom indices, ordered by (g, i, j)
        with i < j; shifts: (n_pairs, 3) integer-valued, pair vector = x_j − x_i + shift·cell.
    """
    n_groups, n = positions.shape[0], positions.shape[1]
    iu, ju = _triu(n, positions.device)
    # Work in fractional coordinates, one component at a time (contiguous (G, P0) arrays):
    # the minimum-image shift is −round(Δf), and r² = Δfᵀ M Δf with the metric M = h hᵀ.
    frac = torch.einsum("gni,gij->jgn", positions, torch.linalg.inv(cells))  # (3, G, n)
    metric = cells @ cells.transpose(1, 2)  # (G, 3, 3)
    out_g, out_i, out_j, out_s = [], [], [], []
    per_chunk = max(1, BRUTE_FORCE_MAX_CANDIDATES // max(len(iu), 1))
    for lo in range(0, n_groups, per_chunk):
        hi = min(n_groups, lo + per_chunk)
        rows = torch.arange(hi - lo, device=positions.device)[:, None] * n
        flat_i, flat_j = (rows + iu).reshape(-1), (rows + ju).reshape(-1)  # 1-D gathers are fastest
        df, shifts = [], []
        for c in range(3):
            f = frac[c, lo:hi].reshape(-1)
            delta = (f.index_select(0, flat_j) - f.index_select(0, flat_i)).view(hi - lo, -1)
            shift = -torch.round(delta)
            df.append(delta + shift)
            shifts.append(shift)
        m = metric[lo:hi]
        r2 = torch.zeros_like(df[0])
        for a in range(3):
            r2 += m[:, a, a, None] * df[a] * df[a]
            for b in range(a + 1, 3):
                r2 += 2.0 * m[:, a, b, None] * df[a] * df[b]
        g, p = (r2 < cutoff_A * cutoff_A).nonzero(as_tuple=True)
        out_g.append(g + lo)
        out_i.append(iu[p])
        out_j.append(ju[p])
        out_s.append(torch.stack([shift[g, p] for shift in shifts], dim=1))
    return torch.cat(out_g), torch.cat(out_i), torch.cat(out_j), torch.cat(out_s)


class NeighborList:
    """What every neighbour list offers: the half pair list within ``cutoff_A + skin_A``.

    Attributes (after :meth:`update`):
        pair_i, pair_j: (n_pairs,) int64 global atom indices.
        pair_shift: (n_pairs, 3) integer cell shifts (state dtype).
        pair_system: (n_pairs,) int64 system of each pair.
        rows: the per-atom rows (:class:`RowList`), else None.
        n_builds: number of rebuilds so far (of the whole batch, or of any system with rows).
    """

    layout = "pairs"
    rows = None

    def __init__(self, cutoff_A: float, *, skin_A: float = 1.0) -> None:
        if cutoff_A <= 0 or skin_A < 0:
            raise ValueError("cutoff_A must be positive and skin_A non-negative")
        self.cutoff_A = float(cutoff_A)
        self.skin_A = float(skin_A)
        self._pairs: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._shift_cart: torch.Tensor | None = None
        self._shift_cell: torch.Tensor | None = None
        self._checked: tuple | None = None

    # ------------------------------------------------------------------ per layout
    @property
    def n_builds(self) -> int:
        raise NotImplementedError

    def _half_list(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _refresh(self, state: BatchState) -> bool:
        """Rebuild what is stale for ``state``; True on a rebuild."""
        raise NotImplementedError

    def invalidate(self, system: int, *, atoms: slice) -> None:
        """System ``system`` (its ``atoms``) was given new positions: rebuild its pairs at the next update."""
        raise NotImplementedError

    def set_active(self, active: torch.Tensor | None) -> None:
        """(n_systems,) bool: replicas still integrated (rows: frozen ones are neither rebuilt nor walked)."""

    # ------------------------------------------------------------------ shared
    def update(self, state: BatchState) -> bool:
        """Rebuild if needed (rows: the stale systems only); True on a rebuild."""
        rebuilt = self._refresh(state)
        if rebuilt:
            self._shift_cart = None
        self._checked = self._stamp(state)
        return rebuilt

    def covers(self, cutoff_A: float) -> bool:
        """True when the list holds every pair within ``cutoff_A``."""
        return self.cutoff_A >= cutoff_A - 1e-12

    def _stamp(self, state: BatchState) -> tuple:
        return (id(state.positions), state.positions._version, id(state.cell), state.cell._version)

    def checked_for(self, state: BatchState) -> bool:
        """True when :meth:`update` ran on exactly these positions and cell (same tensors, not
        modified in place since), so the list is known to be current without a new check."""
        return self._checked == self._stamp(state)

    @property
    def pair_i(self) -> torch.Tensor:
        return self._half_list()[0]

    @property
    def pair_j(self) -> torch.Tensor:
        return self._half_list()[1]

    @property
    def pair_shift(self) -> torch.Tensor:
        return self._half_list()[2]

    @property
    def pair_system(self) -> torch.Tensor:
        return self._half_list()[3]

    def pair_vectors_t(self, state: BatchState) -> torch.Tensor:
        """(3, n_pairs) vectors r_j − r_i + shift·cell in Å, component-major (differentiable).

        Component-major layout, gathered one Cartesian component at a time, makes the
        gathers, squared norms and force scatter several times faster on CPU than (n_pairs, 3).
        """
        cell = state.cell
        if self._shift_cart is None or not torch.equal(self._shift_cell, cell) or cell.requires_grad:
            self._shift_cart = torch.einsum("pk,pkl->lp", self.pair_shift, cell[self.pair_system]).contiguous()
            self._shift_cell = cell.detach().clone()
        positions_t = state.positions.t().contiguous()
        rows = [
            positions_t[c].index_select(0, self.pair_j) - positions_t[c].index_select(0, self.pair_i) for c in range(3)
        ]
        return torch.stack(rows) + self._shift_cart

    def pair_vectors(self, state: BatchState) -> torch.Tensor:
        """(n_pairs, 3) vectors r_j − r_i + shift·cell in Å."""
        return self.pair_vectors_t(state).t()


class PairList(NeighborList):
    """The half pair list as index tensors (see the module doc); the torch layout."""

    def __init__(self, cutoff_A: float, *, skin_A: float = 1.0) -> None:
        super().__init__(cutoff_A, skin_A=skin_A)
        self._n_builds = 0
        self._ref_positions: torch.Tensor | None = None
        self._ref_cell: torch.Tensor | None = None
        self._ref_cell_inv: torch.Tensor | None = None

    @property
    def n_builds(self) -> int:
        return self._n_builds

    def _half_list(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._pairs is None:
            raise RuntimeError("the pair list was never built: call update(state) first")
        return self._pairs

    def needs_rebuild(self, state: BatchState) -> bool:
        """True when pairs within the cutoff may be missing from the list."""
        if self._ref_positions is None or self._ref_positions.shape != state.positions.shape:
            return True
        if torch.equal(state.cell, self._ref_cell):  # NVE/NVT: the cheap test, every step
            strain = torch.zeros(state.n_systems, dtype=state.dtype, device=state.device)
            moved = torch.linalg.vector_norm(state.positions - self._ref_positions, dim=1)
        else:
            # Deformation since the build: F = cell_ref⁻¹ · cell (row-vector convention).
            deform = self._ref_cell_inv @ state.cell  # (n_systems, 3, 3)
            strain = torch.linalg.matrix_norm(deform - torch.eye(3, dtype=state.dtype, device=state.device), ord=2)
            affine_ref = torch.einsum("ai,aij->aj", self._ref_positions, deform[state.system_idx])
            moved = torch.linalg.vector_norm(state.positions - affine_ref, dim=1)
        max_moved = max_per_system(moved, state.system_idx, state.n_systems)
        budget = 2.0 * max_moved + strain * (self.cutoff_A + self.skin_A)
        return bool((budget > self.skin_A).any() | ~torch.isfinite(budget).all())

    def _refresh(self, state: BatchState) -> bool:
        if not self.needs_rebuild(state):
            return False
        self.build(state)
        return True

    def invalidate(self, system: int, *, atoms: slice) -> None:
        self._ref_positions = None
        self._checked = None

    def build(self, state: BatchState) -> None:
        """Rebuild the pair list of every system from the current positions and cells.

        Small systems whose cell is wider than twice the list cutoff are done together by
        minimum image on the state's device; the others one at a time with vesin. Either
        way each system's pairs come out in canonical (i < j, then shift) order.
        """
        rc = self.cutoff_A + self.skin_A
        dev = state.device
        cells = state.cell.detach().cpu().double().numpy()
        counts = state.atoms_per_system.tolist()
        offsets = state.system_offsets().tolist()
        bad_atoms = (~torch.isfinite(state.positions.detach()).all(dim=1)).to(state.dtype)
        finite_sys = (max_per_system(bad_atoms, state.system_idx, state.n_systems) <= 0).cpu().tolist()
        small: dict[int, list[int]] = {}
        large: list[int] = []
        for system in range(state.n_systems):
            if counts[system] < 2 or not finite_sys[system]:  # a failed replica; the guard freezes it
                continue
            if counts[system] <= BRUTE_FORCE_MAX_ATOMS and minimum_image_ok(cells[system], rc):
                small.setdefault(counts[system], []).append(system)
            else:
                large.append(system)
        parts_i, parts_j, parts_s = [], [], []
        for n, systems in small.items():
            idx = torch.tensor(systems, device=dev)
            base = torch.tensor([offsets[k] for k in systems], device=dev)
            pos = state.positions.detach()[base[:, None] + torch.arange(n, device=dev)]
            g, i, j, shifts = brute_force_pairs(pos, state.cell.detach()[idx], cutoff_A=rc)
            parts_i.append(i + base[g])
            parts_j.append(j + base[g])
            parts_s.append(shifts.to(torch.int64))
        if large:
            positions = state.positions.detach().cpu().double().numpy()
            system_idx = state.system_idx.cpu().numpy()
            for system in large:
                lo, hi = offsets[system], offsets[system + 1]
                wrapped, image = _wrap(positions[lo:hi], cells[system_idx[lo:hi]])
                i, j, s = _raw_pairs(wrapped, cell=cells[system], cutoff_A=rc)
                i, j, s = _canonical_pairs(i, j, s + image[i] - image[j])
                parts_i.append(torch.as_tensor(i + lo, device=dev))
                parts_j.append(torch.as_tensor(j + lo, device=dev))
                parts_s.append(torch.as_tensor(s, device=dev))
        if parts_i:
            i, j, s = torch.cat(parts_i), torch.cat(parts_j), torch.cat(parts_s)
            if len(parts_i) > 1:  # system-major order; each system's own order is kept
                order = torch.sort(state.system_idx[i], stable=True).indices
                i, j, s = i[order], j[order], s[order]
        else:
            i = j = torch.zeros(0, dtype=torch.int64, device=dev)
            s = torch.zeros((0, 3), dtype=torch.int64, device=dev)
        self._pairs = (i, j, s.to(state.dtype), state.system_idx[i])
        self._ref_positions = state.positions.detach().clone()
        self._ref_cell = state.cell.detach().clone()
        self._ref_cell_inv = torch.linalg.inv(self._ref_cell)
        self._shift_cart = None
        self._n_builds += 1


class RowList(NeighborList):
    """Per-atom neighbour rows (:class:`~hts_mlff.engine.kernels.neighbor_matrix.NeighborMatrix`,
    built by compiled kernels and rebuilt per system); the half pair list is derived from the rows
    once per rebuild when something asks for it.

    Args:
        half_rows: each pair once, in the row of its lower atom (CPU: Warp runs a launch serially
            and a kernel writes both ends); False: every atom's full row (GPU: one thread per
            atom, no atomics).
    """

    layout = "rows"

    def __init__(self, cutoff_A: float, *, skin_A: float = 1.0, half_rows: bool = True) -> None:
        super().__init__(cutoff_A, skin_A=skin_A)
        from hts_mlff.engine.kernels.neighbor_matrix import NeighborMatrix

        self.rows = NeighborMatrix(cutoff_A, skin_A=skin_A, half=half_rows)
        self._rows_state: BatchState | None = None

    @property
    def n_builds(self) -> int:
        return self.rows.n_builds

    def _half_list(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        if self._pairs is None:
            state = self._rows_state
            if state is None:
                raise RuntimeError("the rows were never built: call update(state) first")
            i, j, shifts = self.rows.half_list(state)
            self._pairs = (i, j, shifts.to(state.dtype), state.system_idx[i])
        return self._pairs

    def needs_rebuild(self, state: BatchState) -> bool:
        return bool(self.rows.stale_systems(state).any())

    def _refresh(self, state: BatchState) -> bool:
        rebuilt = self.rows.update(state)
        if rebuilt:
            self._on_rebuilt(state)
        return rebuilt

    def build(self, state: BatchState) -> None:
        """Rebuild every system's rows now."""
        self.rows.build(state)
        self._on_rebuilt(state)

    def invalidate(self, system: int, *, atoms: slice) -> None:
        self.rows.invalidate(atoms)
        self._checked = None

    def set_active(self, active: torch.Tensor | None) -> None:
        self.rows.active32 = None if active is None else active.to(torch.int32).contiguous()

    def _on_rebuilt(self, state: BatchState) -> None:
        self._pairs = None
        self._rows_state = state
        self._shift_cart = None


def neighbor_list_for(
    forcefield, device: torch.device, *, skin_A: float, min_pair_distance_A: float = 0.0
) -> NeighborList:
    """The engine's one choice of a list for ``forcefield`` on ``device``: its range from
    :func:`list_range_A`; rows where the compiled builders run (they serve the pair layout too,
    in the same canonical order, with no CPU round trip on a GPU), else pairs. The rows are
    half rows on a CPU and full on a GPU: the layout depends on the device only, so a
    trajectory's bits depend neither on its pack nor on the number of threads."""
    from hts_mlff.engine.kernels import kernels_enabled

    range_A = list_range_A(forcefield.cutoff_A, min_pair_distance_A=min_pair_distance_A)
    if kernels_enabled(device):
        return RowList(range_A, skin_A=skin_A, half_rows=device.type == "cpu")
    return PairList(range_A, skin_A=skin_A)


def pairs_for(state: BatchState, neighbors: NeighborList | None, *, cutoff_A: float) -> NeighborList:
    """The list a force field evaluates ``state`` with: ``neighbors`` as handed in (it must cover
    ``cutoff_A`` and be current: the caller updated it for this state), else a fresh
    :class:`PairList` built now (a force field called on its own)."""
    if neighbors is None:
        fresh = PairList(cutoff_A, skin_A=0.0)
        fresh.update(state)
        return fresh
    if not neighbors.covers(cutoff_A):
        raise ValueError(f"the neighbour list covers {neighbors.cutoff_A} Å, the force field needs {cutoff_A} Å")
    if not neighbors.checked_for(state):
        neighbors.update(state)  # positions changed since the caller's update: rebuild if needed
    return neighbors

"""Per-atom neighbour rows (a full list in matrix layout) built and kept per system.

Layout, all torch tensors on the state's device:

* ``neighbors`` (n_atoms, M) int32 — global index of each neighbour of atom i;
* ``shift_code`` (n_atoms, M) int32 — the periodic shift s (three integers, |s_a| < 512)
  packed as ``(s0 + 512) << 20 | (s1 + 512) << 10 | (s2 + 512)``; the pair vector is
  r_j − r_i + s · cell (rows of the cell are lattice vectors);
* ``counts`` (n_atoms,) int32 — how many entries of row i are used.

Every row is sorted by (neighbour index, shift code), so a kernel that walks a row adds the
pair terms of atom i in one canonical order whatever the list held besides (pairs between the
cutoff and cutoff + skin add nothing) and whenever it was rebuilt: forces are bit-identical
whichever pack a replica runs in. Rows are rebuilt only for the systems whose atoms moved more
than half the skin (cell deformation included), so one restless replica does not make the
whole pack rebuild.

Builders, both on the state's device:

* cells wider than twice the list range in every direction, at most
  :data:`MIN_IMAGE_MAX_ATOMS` atoms: all pairs by minimum image (one thread per atom,
  neighbours visited in index order, so rows come out sorted);
* any other system, any cell shape: a cell list (bins at least the list range wide along each
  face normal, or one bin where the cell is narrower; atoms sorted by bin, then index; one
  thread per atom over the bins within reach, periodic images of the bins and of the atom itself
  included; bin columns beyond the range skipped, the bins of a column read as contiguous runs
  of positions stored in bin order; the row then insertion-sorted). Every build runs on the
  state's device.
"""

import itertools
import math
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.kernels import (
    as_warp,
    kernel_threads,
    launch,
    scalar_type,
    spans,
    state_tensor,
    warp,
    warp_device,
)
from hts_mlff.engine.kernels.neighbor_builders import binned_kernel, build_kernels, stale_kernel

# the constants' values and what chose them: kernels/tuning.py
from hts_mlff.engine.kernels.tuning import (
    BIN_SPLIT,
    CHUNK_ATOMS,
    MAX_CHUNKS,
    MIN_BUILD_SPAN,
    MIN_IMAGE_MAX_ATOMS,
    MIN_LIGHT_SPAN,
    MIN_SPAN,
)
from hts_mlff.engine.state import BatchState, max_per_system


def chunks_of(n_atoms: int) -> int:
    """How many chunks a system of ``n_atoms`` has.

    Half rows write both ends of a pair, so two threads may not share a system's force array;
    a large system is cut into chunks by atom index instead (a power of two, at most
    :data:`MAX_CHUNKS`, of at least :data:`CHUNK_ATOMS` atoms each), each adding into its own
    copy of the arrays, summed chunk by chunk in order. The cut depends on the system's size
    alone, so its forces are bit-identical whatever the number of threads or the pack.
    """
    most = min(MAX_CHUNKS, max(1, n_atoms // CHUNK_ATOMS))
    return 1 << (most.bit_length() - 1)


_SHIFT_OFFSET = 512


def _decode(code: torch.Tensor) -> torch.Tensor:
    """(…,) packed shift codes → (…, 3) integer shifts (int64)."""
    code = code.to(torch.int64)
    return torch.stack([(code >> 20) & 1023, (code >> 10) & 1023, code & 1023], dim=-1) - _SHIFT_OFFSET


#: The code of a zero shift (the pair lies inside the cell): kernels skip the shift's arithmetic.
ZERO_SHIFT_CODE = (512 << 20) | (512 << 10) | 512


def _cell_widths(cells: np.ndarray) -> np.ndarray:
    """(S, 3) distances between opposite faces of each (S, 3, 3) cell, Å."""
    volume = np.abs(np.linalg.det(cells))
    widths = [volume / np.linalg.norm(np.cross(cells[:, a], cells[:, b]), axis=1) for a, b in ((1, 2), (2, 0), (0, 1))]
    return np.stack(widths, axis=1)


class NeighborMatrix:
    """Full neighbour rows within ``range_A`` (cutoff + skin) of every atom; see the module doc.

    With ``half=True`` a row holds only the neighbours ahead of its atom (j > i, or a periodic
    image of i itself with a positive shift): each pair once, for kernels that run serially
    (Warp's CPU launches) and write both ends of a pair.

    Attributes (after :meth:`update`):
        neighbors, shift_code: (n_atoms, M) int32; counts: (n_atoms,) int32.
        n_builds: whole-pack builds; n_system_builds: systems rebuilt in all.
    """

    def __init__(self, cutoff_A: float, *, skin_A: float, half: bool = False) -> None:
        self.half = bool(half)
        self.cutoff_A = float(cutoff_A)
        self.skin_A = float(skin_A)
        self.range_A = self.cutoff_A + self.skin_A
        self.neighbors: torch.Tensor | None = None
        self.shift_code: torch.Tensor | None = None
        self.counts: torch.Tensor | None = None
        self.n_builds = 0
        self.n_system_builds = 0
        self._ref_positions: torch.Tensor | None = None
        self._ref_cell: torch.Tensor | None = None
        self._scratch: dict[tuple, list[torch.Tensor]] = {}
        self._identity: torch.Tensor | None = None
        self._no_strain: torch.Tensor | None = None
        self._stale_flags: tuple[torch.Tensor, torch.Tensor] | None = None
        self._extent: torch.Tensor | None = None
        self.system32: torch.Tensor | None = None
        #: (n_systems,) int32, 0 for frozen replicas (set by the integrator), or None: all active
        self.active32: torch.Tensor | None = None
        self.chunk_offsets: list[int] = []
        self.chunk32: torch.Tensor | None = None
        self.n_chunks = 1
        self.pair_spans: list[tuple[int, int]] = []
        self._spans_balanced = False
        self.system_spans: list[tuple[int, int]] = []
        self.start32: torch.Tensor | None = None
        #: what the last rebuild check read of the positions: finite (S,) bool, largest |x_a| (S,) Å
        self._checked: tuple[torch.Tensor, torch.Tensor] | None = None
        #: per-system geometry of the last cells built from (reused while the cells stay the same)
        self._geometry: dict[str, Any] | None = None

    # ------------------------------------------------------------------ rebuild criterion
    def stale_systems(self, state: BatchState) -> torch.Tensor:
        """(n_systems,) bool: systems whose rows may miss a pair within the cutoff (an atom moved
        more than half the skin since the build, cell deformation included)."""
        if self._ref_positions is None or self._ref_positions.shape != state.positions.shape:
            return torch.ones(state.n_systems, dtype=torch.bool, device=state.device)
        fixed_cell = torch.equal(state.cell, self._ref_cell)
        if self._identity is None or self._identity.shape[0] != state.n_systems or self._identity.dtype != state.dtype:
            n, kw = state.n_systems, {"dtype": state.dtype, "device": state.device}
            self._identity = torch.eye(3, **kw).repeat(n, 1, 1)
            self._no_strain = torch.zeros(n, **kw)
            # the check's outputs, kept from step to step (so are their Warp views)
            self._stale_flags = tuple(torch.empty(n, dtype=torch.int32, device=state.device) for _ in range(2))
            self._extent = torch.empty(n, **kw)
        if fixed_cell:
            deform, strain = self._identity, self._no_strain
        else:  # F = cell_ref⁻¹ · cell (row-vector convention)
            deform = (torch.linalg.inv(self._ref_cell) @ state.cell).contiguous()
            eye = torch.eye(3, dtype=state.dtype, device=state.device)
            strain = torch.linalg.matrix_norm(deform - eye, ord=2).contiguous()
        wp = warp()
        scalar = scalar_type(state.dtype)
        stale, finite = self._stale_flags
        extent = self._extent
        launch(
            stale_kernel(scalar),
            spans=self.system_spans,
            inputs=[
                as_warp(state_tensor(state.positions), scalar),
                as_warp(self._ref_positions, scalar),
                as_warp(deform, scalar),
                as_warp(strain, scalar),
                as_warp(self.start32, wp.int32),
                scalar(self.range_A),
                scalar(self.skin_A),
                as_warp(stale, wp.int32),
                as_warp(finite, wp.int32),
                as_warp(extent, scalar),
            ],
            device=warp_device(state.device),
        )
        self._checked = (finite.bool(), extent)
        stale = stale.bool()
        if self.active32 is not None:  # a frozen replica's rows are never needed again
            stale = stale & self.active32.bool()
        return stale

    def invalidate(self, atoms: slice) -> None:
        """These atoms were moved by hand: their system counts as stale at the next check."""
        if self._ref_positions is not None:
            self._ref_positions[atoms] = float("nan")

    def scratch(
        self, dtype: torch.dtype, shapes: tuple[tuple[int, ...], ...], *, tag: str = "atoms", fill: float = 0.0
    ) -> list[torch.Tensor]:
        """Work arrays of the kernels that run over these rows, allocated once per shape."""
        key = (tag, dtype, shapes)
        if key not in self._scratch:
            device = self.counts.device
            self._scratch[key] = [torch.full(shape, fill, dtype=dtype, device=device) for shape in shapes]
        return self._scratch[key]

    # ------------------------------------------------------------------ build
    def update(self, state: BatchState) -> bool:
        """Rebuild the rows of stale systems; True when any was rebuilt."""
        stale = self.stale_systems(state)
        if not bool(stale.any()):
            return False
        self.build(state, systems=stale, checked=self._checked)
        return True

    def build(
        self,
        state: BatchState,
        *,
        systems: torch.Tensor | None = None,
        checked: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        """Rebuild the rows of ``systems`` ((n_systems,) bool; all when None). ``checked``: what
        :meth:`stale_systems` read of these very positions (per system finite, largest |x_a|)."""
        dev, n = state.device, state.n_atoms
        positions = state.positions.detach()
        if systems is None or self.neighbors is None or self.neighbors.shape[0] != n:
            systems = torch.ones(state.n_systems, dtype=torch.bool, device=dev)
            self.system32 = state.system_idx.to(torch.int32).contiguous()
            self.start32 = state.system_offsets().to(torch.int32).contiguous()
            offsets = self.start32.tolist()
            threads = kernel_threads() if dev.type == "cpu" else 1
            # half rows write both ends of a pair: the pair kernel's spans hold whole chunks
            self._chunk_layout(offsets, dev)
            self.pair_spans = spans(self.chunk_offsets, threads, whole_systems=self.half, min_size=MIN_SPAN)
            self._spans_balanced = False
            per_system = max(1, MIN_LIGHT_SPAN * state.n_systems // max(n, 1))  # systems per MIN_LIGHT_SPAN atoms
            self.system_spans = spans(
                list(range(state.n_systems + 1)), threads, whole_systems=False, min_size=per_system
            )
            width = self._estimate_width(state)
            self._allocate(n, width, dev)
            self._ref_positions = positions.clone()
            self._ref_cell = state.cell.detach().clone()
            self._geometry = None
        geometry = self._cell_geometry(state)
        if checked is not None:
            finite, extent = checked
        else:
            finite_atoms = torch.isfinite(positions).all(dim=1).to(state.dtype)
            finite = max_per_system(1.0 - finite_atoms, state.system_idx, state.n_systems) <= 0
            extent = max_per_system(positions.abs().amax(dim=1), state.system_idx, state.n_systems)
        # Shifts are packed in ±511 cells: a replica that flew hundreds of cells away (an
        # explosion between two guard checks) gets empty rows, no forces, and the guard freezes it.
        finite = finite & ~(extent * math.sqrt(3.0) > geometry["far_A"])
        # rebuild flag per system: 0 keep, 1 minimum image, 2 clear (a failed replica), 4 bins
        flag = torch.where(finite, geometry["kind"], 2)
        flag = torch.where(systems, flag, 0).to(torch.int32)
        while True:
            self._launch_min_image(state, flag, inverse=geometry["inverse"])
            self._fill_binned(
                state,
                flag == 4,
                bins=geometry["bins"],
                reach=geometry["reach"],
                bin_width=geometry["bin_width"],
                orthogonal=geometry["orthogonal"],
            )
            max_count = int(self.counts.max()) if n else 0
            width = self.neighbors.shape[1]
            if max_count <= width:
                break
            self._allocate(n, math.ceil(max(max_count, width) * 1.25) + 4, dev)
            flag = torch.where(finite, geometry["kind"], 2).to(torch.int32)
            systems = torch.ones_like(systems)
        if bool(systems.all()):
            self._ref_positions.copy_(positions)
            self._ref_cell.copy_(state.cell.detach())
        else:  # in place: the rebuild check's view of the reference stays valid
            atoms = torch.nonzero(systems.index_select(0, self.system32)).flatten()
            self._ref_positions.index_copy_(0, atoms, positions.index_select(0, atoms))
            self._ref_cell = torch.where(systems[:, None, None], state.cell.detach(), self._ref_cell)
        self._checked = None
        self.n_builds += 1
        if self.half and len(self.pair_spans) > 1 and not self._spans_balanced:
            self._balance_pair_spans()  # once per layout: a row's length follows its atom's index
            self._spans_balanced = True
        self.n_system_builds += int(systems.sum())

    def _balance_pair_spans(self) -> None:
        """Cut the half-row pair kernel's spans where the rows' entries, not the atoms, divide
        evenly (an atom's half row is longer the earlier it comes: the neighbours across the
        cell's faces come after it). Chunks stay whole, so the bits do not change."""
        ends = torch.tensor(self.chunk_offsets[1:], device=self.counts.device) - 1
        load = torch.cumsum(self.counts.to(torch.int64), 0)[ends].tolist()  # entries up to each chunk's end
        cuts, total, n_spans = [], load[-1], len(self.pair_spans)
        for k in range(1, n_spans):
            best = min(range(len(load) - 1), key=lambda c: abs(load[c] - total * k / n_spans))
            if not cuts or best > cuts[-1]:
                cuts.append(best)
        bounds = [self.chunk_offsets[0], *(self.chunk_offsets[c + 1] for c in cuts), self.chunk_offsets[-1]]
        self.pair_spans = list(itertools.pairwise(bounds))

    def _chunk_layout(self, offsets: list[int], device: torch.device) -> None:
        """Chunks of every system (half rows; one per system for full rows): ``chunk_offsets``
        (first atom of every chunk, and the end), ``chunk32`` (n_atoms,) int32 each atom's chunk
        within its system, ``n_chunks`` the most chunks of any system."""
        bounds, index = [offsets[0]], []
        for lo, hi in itertools.pairwise(offsets):
            k = chunks_of(hi - lo) if self.half else 1
            bounds += [lo + round((hi - lo) * c / k) for c in range(1, k + 1)]
            index += range(k)
        self.chunk_offsets = bounds
        sizes = torch.tensor([b - a for a, b in itertools.pairwise(bounds)], device=device)
        self.chunk32 = torch.repeat_interleave(torch.tensor(index, dtype=torch.int32, device=device), sizes)
        self.n_chunks = max(index, default=0) + 1

    def _cell_geometry(self, state: BatchState) -> dict[str, Any]:
        """Which builder each system takes, its bins and the inverse cells: worked out again only
        when a cell or a system's size changed since the last build."""
        cell, sizes = state.cell.detach(), state.atoms_per_system
        cached = self._geometry
        if (
            cached is not None
            and cached["cell"].shape == cell.shape
            and torch.equal(cached["cell"], cell)
            and torch.equal(cached["sizes"], sizes)
        ):
            return cached
        dev = state.device
        cells_np = cell.cpu().double().numpy()
        face_widths = _cell_widths(cells_np)  # (S, 3)
        widths = face_widths.min(axis=1)
        min_image = (widths > 2.0 * self.range_A) & (sizes.cpu().numpy() <= MIN_IMAGE_MAX_ATOMS)
        # bins of ≥ the list range / BIN_SPLIT (one where the cell is narrower), scanned over
        # ±reach bins with reach · bin width ≥ the range (a cell narrower than the range: over
        # its periodic images); the kernel skips the bins of the stencil beyond the range
        bins = np.maximum(1, np.floor(face_widths * BIN_SPLIT / self.range_A)).astype(np.int64)
        bin_width = face_widths / bins
        reach = np.ceil(self.range_A / bin_width).astype(np.int64)
        unit = cells_np / np.linalg.norm(cells_np, axis=2, keepdims=True)
        gram = np.einsum("sai,sbi->sab", unit, unit) - np.eye(3)
        orthogonal = np.abs(gram).max(axis=(1, 2)) < 1e-12
        kind = np.where(min_image, 1, 4)
        self._geometry = {
            "cell": cell.clone(),
            "sizes": sizes.clone(),
            "kind": torch.as_tensor(kind, dtype=torch.int32, device=dev),
            "bins": bins,
            "reach": reach,
            "bin_width": torch.as_tensor(bin_width, dtype=state.dtype, device=dev),
            "orthogonal": orthogonal,
            "far_A": torch.as_tensor(250.0 * widths, dtype=state.dtype, device=dev),
            "inverse": torch.linalg.inv(cell.contiguous()).contiguous(),
        }
        return self._geometry

    def _estimate_width(self, state: BatchState) -> int:
        density = (state.atoms_per_system.to(state.dtype) / state.volume).max().item()
        expected = density * 4.0 / 3.0 * math.pi * self.range_A**3
        return math.ceil(expected * 1.3) + 8

    def _allocate(self, n_atoms: int, width: int, device: torch.device) -> None:
        self.neighbors = torch.zeros((n_atoms, width), dtype=torch.int32, device=device)
        self.shift_code = torch.zeros((n_atoms, width), dtype=torch.int32, device=device)
        self.counts = torch.zeros(n_atoms, dtype=torch.int32, device=device)

    def _launch_min_image(self, state: BatchState, flag: torch.Tensor, *, inverse: torch.Tensor) -> None:
        wp = warp()
        scalar = scalar_type(state.dtype)
        fractional, build_min_image = build_kernels(scalar)
        dev = warp_device(state.device)
        # the atoms of the systems this builder serves, so threads split the work itself (a
        # partial rebuild's systems lie anywhere in the pack) and no thread idles on the others
        flagged = (flag == 1) | (flag == 2)
        if not bool(flagged.any()):
            return
        targets = torch.nonzero(flagged.index_select(0, self.system32)).flatten().to(torch.int32)
        n_targets = int(targets.shape[0])
        threads = kernel_threads() if state.device.type == "cpu" else 1
        system_w, flag_w = as_warp(self.system32, wp.int32), as_warp(flag, wp.int32)
        targets_w = as_warp(targets, wp.int32)
        frac = as_warp(self.scratch(state.dtype, ((state.n_atoms, 3),), tag="fractional")[0], scalar)
        launch(
            fractional,
            spans=[(0, n_targets)],  # a few products per atom: not worth a hand-off
            inputs=[
                targets_w,
                as_warp(state_tensor(state.positions), scalar),
                as_warp(inverse, scalar),
                system_w,
                flag_w,
                frac,
            ],
            device=dev,
        )
        launch(
            build_min_image,
            spans=spans([0, n_targets], threads, whole_systems=False, min_size=MIN_BUILD_SPAN),
            inputs=[
                targets_w,
                frac,
                as_warp(state.cell.detach().contiguous(), scalar),
                system_w,
                as_warp(self.start32, wp.int32),
                flag_w,
                scalar(self.range_A * self.range_A),
                wp.int32(1 if self.half else 0),
                as_warp(self.neighbors, wp.int32),
                as_warp(self.shift_code, wp.int32),
                as_warp(self.counts, wp.int32),
            ],
            device=dev,
        )

    def _fill_binned(
        self,
        state: BatchState,
        systems: torch.Tensor,
        *,
        bins: np.ndarray,
        reach: np.ndarray,
        bin_width: torch.Tensor,
        orthogonal: np.ndarray,
    ) -> None:
        """Rows of ``systems`` from a cell list on the state's device: (S, 3) bins per direction,
        scanned over ±``reach`` bins; ``bin_width`` (S, 3) Å along each face normal."""
        picked = torch.nonzero(systems).flatten().tolist()
        if not picked:
            return
        wp = warp()
        scalar = scalar_type(state.dtype)
        offsets = self.start32.tolist()
        for system in picked:
            lo, hi = offsets[system], offsets[system + 1]
            n = hi - lo
            cell = state.cell[system].detach().contiguous()
            frac = state.positions[lo:hi].detach() @ torch.linalg.inv(cell)
            image = torch.floor(frac)
            wrapped = (frac - image).contiguous()
            nb = torch.as_tensor(bins[system], device=state.device)
            bin_of = torch.minimum((wrapped * nb).to(torch.int64), nb - 1).clamp(min=0)  # as the kernel does
            linear = (bin_of[:, 0] * nb[1] + bin_of[:, 1]) * nb[2] + bin_of[:, 2]
            order = torch.argsort(linear * n + torch.arange(n, device=state.device))  # by bin, then index
            n_bins = int(bins[system].prod())
            bin_start = torch.zeros(n_bins + 1, dtype=torch.int64, device=state.device)
            bin_start[1:] = torch.cumsum(torch.bincount(linear, minlength=n_bins), 0)
            launch(
                binned_kernel(scalar),
                spans=spans(
                    [0, n],
                    kernel_threads() if state.device.type == "cpu" else 1,
                    whole_systems=False,
                    min_size=MIN_BUILD_SPAN,
                ),
                inputs=[
                    as_warp(wrapped, scalar),
                    as_warp(wrapped[order].contiguous(), scalar),
                    as_warp(image.to(torch.int32).contiguous(), wp.int32),
                    as_warp(order.to(torch.int32).contiguous(), wp.int32),
                    as_warp(bin_start.to(torch.int32).contiguous(), wp.int32),
                    *(wp.int32(int(v)) for v in bins[system]),
                    *(wp.int32(int(v)) for v in reach[system]),
                    as_warp(bin_width[system], scalar),
                    wp.int32(int(orthogonal[system])),
                    as_warp(cell, scalar),
                    wp.int32(lo),
                    scalar(self.range_A),
                    wp.int32(1 if self.half else 0),
                    as_warp(self.neighbors, wp.int32),
                    as_warp(self.shift_code, wp.int32),
                    as_warp(self.counts, wp.int32),
                ],
                device=warp_device(state.device),
            )

    # ------------------------------------------------------------------ other layouts
    def half_list(self, state: BatchState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rows as a canonical half pair list: i, j (int64, i < j or i == j with the first
        non-zero shift positive) and integer shifts (n_pairs, 3), ordered by (i, j, shift)."""
        width = self.neighbors.shape[1]
        keep = torch.arange(width, device=state.device)[None, :] < self.counts[:, None]
        i = torch.arange(state.n_atoms, device=state.device)[:, None].expand(-1, width)
        j = self.neighbors.to(torch.int64)
        shifts = _decode(self.shift_code)
        if not self.half:
            first = shifts[..., 0]
            first = torch.where(first != 0, first, torch.where(shifts[..., 1] != 0, shifts[..., 1], shifts[..., 2]))
            keep = keep & ((j > i) | ((j == i) & (first > 0)))
        return i[keep], j[keep], shifts[keep]

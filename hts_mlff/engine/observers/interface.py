r"""Solid–liquid interface tracking: a per-slab crystalline order parameter along z, on the fly.

The cell is cut into slabs along its third vector (one conventional FCC cell thick:
``repeat_z`` slabs, binned by the wrapped fractional z). For each slab s with N_s atoms,

.. math::

    \psi_s = \frac{1}{2 N_s^2}\Big(\Big|\sum_{j\in s} e^{i G_x x_j}\Big|^2
                                 + \Big|\sum_{j\in s} e^{i G_y y_j}\Big|^2\Big),
    \qquad G_x\cdot r = 2\pi\,(2 n_x)\, f_x,\ \ G_y\cdot r = 2\pi\,(2 n_y)\, f_y,

the static structure factor of the lateral (200) reflections of the crystal (f: fractional
coordinates; n_x, n_y the lateral repeats, so G is a reciprocal vector of the FCC lattice the
system was built from). A crystalline slab gives ψ ≈ exp(−G²⟨u_x²⟩) (about 0.6–0.9 for argon up
to melting), a liquid one ≈ 1/N_s (≤ 0.01 for a 6 × 6 cross-section). Lateral reflections
stay commensurate when an NP_zT barostat changes only L_z, and a crystal grown from the
existing one keeps its registry, so |·| needs no phase reference. Cost: O(N) per sample.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.observers.base import Observer, sample_rows
from hts_mlff.engine.state import BatchState


class InterfaceObserver(Observer):
    """``interface_order``: (n_systems, n_frames, n_slabs) ψ per slab; NaN for failed replicas
    and for slabs beyond a replica's own ``repeat_z``.

    Args:
        repeats: (n_x, n_y, n_z) FCC repeats of each replica of the pack (none for the template).
        n_slabs: slab dim of the store (the largest n_z of the campaign).
    """

    quantities = ("interface_order",)

    def __init__(self, repeats: list[tuple[int, int, int]] | None = None, *, n_slabs: int) -> None:
        super().__init__()
        self.repeats = list(repeats or [])
        self.n_slabs = int(n_slabs)

    def dimension_sizes(self, *, n_frames: int) -> dict[str, int]:
        return {"slab": self.n_slabs}

    def start(self, state: BatchState, *, n_frames: int) -> None:
        if len(self.repeats) != state.n_systems:
            raise ValueError(f"interface observer: {len(self.repeats)} repeats for {state.n_systems} replicas")
        self.buffers = {"interface_order": np.full((state.n_systems, n_frames, self.n_slabs), np.nan)}
        repeats = torch.as_tensor(self.repeats, dtype=state.dtype, device=state.device)  # (n_sys, 3)
        self._per_atom = repeats[state.system_idx]  # (n_atoms, 3)
        self._nz = torch.as_tensor([r[2] for r in self.repeats], device=state.device)

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        n_sys, n_slabs = state.n_systems, self.n_slabs
        inverse = torch.linalg.inv(state.cell)[state.system_idx]
        fractional = torch.einsum("ak,akj->aj", state.positions.detach(), inverse)
        fractional = fractional - torch.floor(fractional)
        slab = torch.clamp(torch.floor(fractional[:, 2] * self._per_atom[:, 2]).long(), max=n_slabs - 1)
        slab = torch.minimum(slab, self._nz[state.system_idx] - 1)
        bins = state.system_idx * n_slabs + slab
        two_pi = 2.0 * math.pi
        sums = torch.zeros(5, n_sys * n_slabs, dtype=state.dtype, device=state.device)
        phase_x = two_pi * 2.0 * self._per_atom[:, 0] * fractional[:, 0]
        phase_y = two_pi * 2.0 * self._per_atom[:, 1] * fractional[:, 1]
        values = torch.stack(
            [torch.cos(phase_x), torch.sin(phase_x), torch.cos(phase_y), torch.sin(phase_y), torch.ones_like(phase_x)]
        )
        sums.index_add_(1, bins, values)
        count = sums[4]
        psi = (sums[0] ** 2 + sums[1] ** 2 + sums[2] ** 2 + sums[3] ** 2) / (2.0 * count.clamp_min(1.0) ** 2)
        psi = torch.where(count > 0, psi, torch.full_like(psi, float("nan")))
        values_np = psi.reshape(n_sys, n_slabs).cpu().double().numpy()
        rows, frames = sample_rows(frame, alive)
        self.buffers["interface_order"][rows, frames] = values_np[rows]

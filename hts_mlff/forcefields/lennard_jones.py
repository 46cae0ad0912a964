r"""Lennard-Jones pair potential, batched over systems and species pairs.

.. math::

    V(r) = 4\epsilon\left[(\sigma/r)^{12} - (\sigma/r)^6\right] - V_\text{shift}, \quad r < r_c

with :math:`V_\text{shift} = 4\epsilon[(\sigma/r_c)^{12} - (\sigma/r_c)^6]` when ``shift``
is on (energy continuous at the cutoff; forces are unchanged). For a pair vector
:math:`\mathbf{d} = \mathbf{r}_j - \mathbf{r}_i`, with :math:`s_6 = (\sigma/r)^6`,

.. math::

    \mathbf{F}_j = -\mathbf{F}_i = \frac{24\epsilon}{r^2}\,(2 s_6^2 - s_6)\,\mathbf{d},
    \qquad
    \sigma_{ab} = -\frac{1}{V}\sum_\text{pairs} \frac{24\epsilon}{r^2}(2 s_6^2 - s_6)\, d_a d_b .

Only multiplications and divisions touch the pair values, so results do not depend on
where a system sits in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.neighbors import NeighborList, pairs_for
from hts_mlff.engine.state import BatchState
from hts_mlff.forcefields.pair import (
    KernelTable,
    pair_heat_current,
    pair_output,
    partition_heat_current,
    rows_output,
)


@dataclass(frozen=True)
class PairParameters:
    """ε (eV) and σ (Å) of one species pair, by atomic number."""

    z_a: int
    z_b: int
    epsilon_eV: float
    sigma_A: float


class LennardJones(ForceField):
    """Lennard-Jones force field (with a heat current: pairwise energy partition).

    Args:
        epsilon_eV: well depth for every pair not listed in ``pairs``.
        sigma_A: zero-crossing distance for every pair not listed in ``pairs``.
        cutoff_A: interaction cutoff.
        shift: subtract V(r_c) so the energy is continuous at the cutoff.
        pairs: per species-pair overrides.
    """

    def __init__(
        self,
        epsilon_eV: float = 0.010327,
        *,
        sigma_A: float = 3.405,
        cutoff_A: float = 8.5,
        shift: bool = True,
        pairs: list[PairParameters] | None = None,
    ) -> None:
        if epsilon_eV < 0 or sigma_A <= 0 or cutoff_A <= 0:
            raise ValueError("epsilon_eV must be ≥ 0, sigma_A and cutoff_A > 0")
        self.epsilon_eV = float(epsilon_eV)
        self.sigma_A = float(sigma_A)
        self.cutoff_A = float(cutoff_A)
        self.shift = bool(shift)
        self.pairs = list(pairs or [])
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}
        self._kernel_table = KernelTable(self._kernel_parameters)

    has_heat_current = True
    neighbor_layout = "rows"

    def config(self) -> dict[str, Any]:
        return {
            "epsilon_eV": self.epsilon_eV,
            "sigma_A": self.sigma_A,
            "cutoff_A": self.cutoff_A,
            "shift": self.shift,
            "pairs": [vars(p) for p in self.pairs],
        }

    def _pair_tables(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(119, 119) tables of ε and σ² indexed by atomic numbers."""
        key = (device, dtype)
        if key not in self._tables:
            eps = torch.full((119, 119), self.epsilon_eV, dtype=dtype)
            sig = torch.full((119, 119), self.sigma_A, dtype=dtype)
            for p in self.pairs:
                for a, b in ((p.z_a, p.z_b), (p.z_b, p.z_a)):
                    eps[a, b] = p.epsilon_eV
                    sig[a, b] = p.sigma_A
            self._tables[key] = (eps.to(device), (sig * sig).to(device))
        return self._tables[key]

    def _pair_terms(self, state: BatchState, nl: NeighborList) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Pair vectors d = r_j − r_i (3, n_pairs) Å, pair energies (n_pairs,) eV and
        f_over_r = −(dV/dr)/r (n_pairs,) eV/Å², so the force on j is f_over_r · d."""
        d = nl.pair_vectors_t(state)  # (3, n_pairs)
        r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        inside = r2 < self.cutoff_A * self.cutoff_A
        if self.pairs:
            eps_t, sig2_t = self._pair_tables(state.device, state.dtype)
            zi, zj = state.atomic_numbers[nl.pair_i], state.atomic_numbers[nl.pair_j]
            eps, sig2 = eps_t[zi, zj], sig2_t[zi, zj]
        else:
            eps = torch.tensor(self.epsilon_eV, dtype=state.dtype, device=state.device)
            sig2 = torch.tensor(self.sigma_A**2, dtype=state.dtype, device=state.device)
        # Pairs between r_c and r_c + skin get 1/r² = 0, so they add exact zeros: the sums do
        # not depend on which extra pairs the Verlet list holds.
        mask = inside.to(r2.dtype)
        inv_r2 = mask / r2
        s2 = sig2 * inv_r2
        s6 = s2 * s2 * s2
        s12 = s6 * s6
        e_pair = (s12 - s6) * (4.0 * eps)
        if self.shift:
            c2 = sig2 / (self.cutoff_A * self.cutoff_A)
            c6 = c2 * c2 * c2
            e_pair = e_pair - mask * (4.0 * eps * (c6 * c6 - c6))
        f_over_r = (2.0 * s12 - s6) * inv_r2 * (24.0 * eps)
        return d, e_pair, f_over_r

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        nl = pairs_for(state, neighbors, cutoff_A=self.cutoff_A)
        if nl.rows is not None:
            return self._forward_rows(state, nl, compute_stress=compute_stress)
        d, e_pair, f_over_r = self._pair_terms(state, nl)
        return pair_output(state, nl, d, e_pair, f_over_r, compute_stress=compute_stress)

    def _kernel_parameters(self, species: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(T, T, 4) [4ε, σ², V_shift(r_c), 0] of the species present (kernel path)."""
        eps_t, sig2_t = self._pair_tables(device, dtype)
        eps = eps_t[species[:, None], species[None, :]]
        sig2 = sig2_t[species[:, None], species[None, :]]
        c6 = (sig2 / (self.cutoff_A * self.cutoff_A)) ** 3
        shift = 4.0 * eps * (c6 * c6 - c6) if self.shift else torch.zeros_like(eps)
        return torch.stack([4.0 * eps, sig2, shift, torch.zeros_like(eps)], dim=-1)

    def _forward_rows(self, state: BatchState, nl: NeighborList, *, compute_stress: bool) -> ForceOutput:
        from hts_mlff.engine.kernels import scalar_type
        from hts_mlff.forcefields.pair_functions import lennard_jones_function

        return rows_output(
            state,
            nl,
            pair_function=lennard_jones_function(scalar_type(state.dtype)),
            table=self._kernel_table,
            cutoff_A=self.cutoff_A,
            compute_stress=compute_stress,
        )

    def heat_current(
        self, state: BatchState, *, output: ForceOutput | None = None, neighbors: NeighborList | None = None
    ) -> torch.Tensor:
        """(n_systems, 3) heat current in eV·Å/fs, pairwise energy partition
        (:func:`hts_mlff.forcefields.pair.pair_heat_current`; from ``output``'s per-atom
        partition when it carries one, :func:`~hts_mlff.forcefields.pair.partition_heat_current`)."""
        if output is not None and output.atom_virial is not None:
            return partition_heat_current(state, output)
        nl = pairs_for(state, neighbors, cutoff_A=self.cutoff_A)
        d, e_pair, f_over_r = self._pair_terms(state, nl)
        return pair_heat_current(state, nl, d, e_pair, f_over_r)

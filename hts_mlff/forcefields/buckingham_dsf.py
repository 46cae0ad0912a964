r"""Buckingham (Born–Mayer + dispersion) short range with damped-shifted-force electrostatics.

For an ionic conductor with formal or partial charges q_i (e), each pair i < j within the
cutoff r_c contributes

.. math::

    V_{ij}(r) = A_{ab}\, e^{-r/\rho_{ab}} - \frac{C_{ab}}{r^6}
              + k_e q_i q_j \Big[\frac{\operatorname{erfc}(\alpha r)}{r}
              - \frac{\operatorname{erfc}(\alpha r_c)}{r_c}
              + \Big(\frac{\operatorname{erfc}(\alpha r_c)}{r_c^2}
              + \frac{2\alpha}{\sqrt\pi}\frac{e^{-\alpha^2 r_c^2}}{r_c}\Big)(r - r_c)\Big]

and each ion a self term :math:`-k_e q_i^2\,[\operatorname{erfc}(\alpha r_c)/(2 r_c) + \alpha/\sqrt\pi]`
(Fennell & Gezelter, J. Chem. Phys. 124, 234104 (2006), eq. 19 with the self term of their
eq. 10). The damped-shifted-force (DSF) form makes both the Coulomb energy and force go to zero
at r_c, so a pairwise sum within a neighbour list replaces the Ewald mesh. Its accuracy is set
by α r_c: for rock salt the energy meets the Madelung energy to 1e-4 with α r_c = 3 (r_c = 10,
12, 15 Å with α = 0.3, 0.25, 0.2 Å⁻¹) and is ~1 % short with α r_c = 2 (tested); choose
α ≈ 3/r_c. k_e = e²/4πε₀ = 14.3996 eV·Å. The short-range part is cut at
r_c and, with ``shift``, shifted to zero energy there. A,ρ,C are per species pair (eV, Å,
eV·Å⁶); pairs not listed have none. Every system must be neutral (Σ q_i = 0), else ValueError.

Radial force magnitude f(r) = −dV/dr:

.. math::

    f(r) = \frac{A}{\rho} e^{-r/\rho} - \frac{6C}{r^7}
         + k_e q_i q_j\Big[\frac{\operatorname{erfc}(\alpha r)}{r^2}
         + \frac{2\alpha}{\sqrt\pi}\frac{e^{-\alpha^2 r^2}}{r}
         - \frac{\operatorname{erfc}(\alpha r_c)}{r_c^2}
         - \frac{2\alpha}{\sqrt\pi}\frac{e^{-\alpha^2 r_c^2}}{r_c}\Big].
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.neighbors import NeighborList, pairs_for
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.forcefields.pair import (
    KernelTable,
    pair_heat_current,
    pair_output,
    partition_heat_current,
    rows_output,
)
from hts_mlff.units import COULOMB_EV_A


@dataclass(frozen=True)
class BuckinghamPair:
    """A (eV), ρ (Å) and C (eV·Å⁶) of one species pair, by atomic number."""

    z_a: int
    z_b: int
    a_eV: float
    rho_A: float
    c_eV_A6: float = 0.0


class BuckinghamDSF(ForceField):
    """Buckingham short range + DSF Coulomb (see the module docstring).

    Args:
        charges: charge (e) per atomic number.
        pairs: Buckingham parameters per species pair.
        cutoff_A: r_c of both parts.
        alpha_per_A: DSF damping α.
        shift: shift the short-range energy to zero at r_c.
    """

    has_heat_current = True
    neighbor_layout = "rows"

    def __init__(
        self,
        charges: dict[int, float],
        *,
        pairs: list[BuckinghamPair],
        cutoff_A: float = 10.0,
        alpha_per_A: float = 0.3,
        shift: bool = True,
    ) -> None:
        if cutoff_A <= 0 or alpha_per_A < 0:
            raise ValueError("cutoff_A must be > 0 and alpha_per_A ≥ 0")
        for p in pairs:
            if p.rho_A <= 0 or p.a_eV < 0 or p.c_eV_A6 < 0:
                raise ValueError(f"pair {p.z_a}-{p.z_b}: need A ≥ 0, ρ > 0, C ≥ 0")
        self.charges = {int(z): float(q) for z, q in charges.items()}
        self.pairs = list(pairs)
        self.cutoff_A = float(cutoff_A)
        self.alpha_per_A = float(alpha_per_A)
        self.shift = bool(shift)
        self._tables: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, ...]] = {}
        self._kernel_table = KernelTable(self._kernel_parameters)
        self._site_key: tuple | None = None
        self._site: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def config(self) -> dict[str, Any]:
        return {
            "charges": {str(z): q for z, q in sorted(self.charges.items())},
            "pairs": [vars(p) for p in self.pairs],
            "cutoff_A": self.cutoff_A,
            "alpha_per_A": self.alpha_per_A,
            "shift": self.shift,
        }

    def _tables_for(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
        """(119,) charges and (119, 119) A, 1/ρ, C tables indexed by atomic numbers."""
        key = (device, dtype)
        if key not in self._tables:
            charge = torch.zeros(119, dtype=torch.float64)
            for z, q in self.charges.items():
                charge[z] = q
            a, inv_rho, c = (torch.zeros(119, 119, dtype=torch.float64) for _ in range(3))
            for p in self.pairs:
                for i, j in ((p.z_a, p.z_b), (p.z_b, p.z_a)):
                    a[i, j], inv_rho[i, j], c[i, j] = p.a_eV, 1.0 / p.rho_A, p.c_eV_A6
            self._tables[key] = tuple(t.to(device=device, dtype=dtype) for t in (charge, a, inv_rho, c))
        return self._tables[key]

    def _charges(self, state: BatchState) -> torch.Tensor:
        """(n_atoms,) charges; ValueError for an unknown species or a charged system."""
        charge_table = self._tables_for(state.device, state.dtype)[0]
        unknown = sorted(set(state.atomic_numbers.unique().tolist()) - set(self.charges))
        if unknown:
            raise ValueError(f"no charge given for atomic numbers {unknown} (charges: {self.charges})")
        q = charge_table[state.atomic_numbers]
        # neutrality in float64 from the exact charges: float32 sums of many ions leave ~1e-5 e
        exact = self._tables_for(state.device, torch.float64)[0][state.atomic_numbers]
        total = sum_per_system(exact, state.system_idx, state.n_systems)
        if bool((total.abs() > 1e-6).any()):
            bad = int(torch.nonzero(total.abs() > 1e-6)[0, 0])
            raise ValueError(f"system {bad} carries a net charge of {float(total[bad]):.6g} e; DSF needs Σ q = 0")
        return q

    def _pair_terms(
        self, state: BatchState, nl: NeighborList, q: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """d = r_j − r_i (3, P) Å, pair energies (P,) eV, f_over_r = −(dV/dr)/r (P,) eV/Å²."""
        _, a_t, inv_rho_t, c_t = self._tables_for(state.device, state.dtype)
        d = nl.pair_vectors_t(state)
        r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
        rc, alpha = self.cutoff_A, self.alpha_per_A
        mask = (r2 < rc * rc).to(r2.dtype)
        r = torch.sqrt(torch.where(mask > 0, r2, torch.ones_like(r2)))  # 1 outside: finite, masked
        zi, zj = state.atomic_numbers[nl.pair_i], state.atomic_numbers[nl.pair_j]
        a, inv_rho, c = a_t[zi, zj], inv_rho_t[zi, zj], c_t[zi, zj]
        qq = COULOMB_EV_A * q[nl.pair_i] * q[nl.pair_j]
        # short range
        born = a * torch.exp(-r * inv_rho)
        inv_r6 = 1.0 / (r2 * r2 * r2).clamp_min(1e-30)
        e_short = born - c * inv_r6
        if self.shift:
            e_short = e_short - (a * torch.exp(-rc * inv_rho) - c / rc**6)
        f_short = born * inv_rho - 6.0 * c * inv_r6 / r
        # damped shifted force Coulomb
        two_over_sqrt_pi = 2.0 / math.sqrt(math.pi)
        erfc_c = math.erfc(alpha * rc)
        force_c = erfc_c / rc**2 + two_over_sqrt_pi * alpha * math.exp(-((alpha * rc) ** 2)) / rc
        erfc_r = torch.special.erfc(alpha * r)
        e_coul = qq * (erfc_r / r - erfc_c / rc + force_c * (r - rc))
        f_coul = qq * (erfc_r / (r * r) + two_over_sqrt_pi * alpha * torch.exp(-((alpha * r) ** 2)) / r - force_c)
        e_pair = (e_short + e_coul) * mask
        f_over_r = (f_short + f_coul) / r * mask
        return d, e_pair, f_over_r

    def _self_energy(self, q: torch.Tensor) -> torch.Tensor:
        """(n_atoms,) −k_e q_i² [erfc(α r_c)/(2 r_c) + α/√π] eV."""
        rc, alpha = self.cutoff_A, self.alpha_per_A
        return -COULOMB_EV_A * q * q * (math.erfc(alpha * rc) / (2 * rc) + alpha / math.sqrt(math.pi))

    def _kernel_parameters(self, species: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(T, T, 4) [A, 1/ρ, C, k_e q_a q_b] of the species present (kernel path)."""
        charge, a, inv_rho, c = self._tables_for(device, dtype)
        pair = (species[:, None], species[None, :])
        qq = COULOMB_EV_A * charge[species][:, None] * charge[species][None, :]
        return torch.stack([a[pair], inv_rho[pair], c[pair], qq], dim=-1)

    def _charges_and_site_energy(self, state: BatchState) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(n_atoms,) charges, (n_atoms,) self energies and (n_systems,) their sums, kept while
        the species stay."""
        z = state.atomic_numbers
        key = (z.data_ptr(), z.shape[0], state.n_systems, state.device, state.dtype)
        if self._site_key != key:
            q = self._charges(state)
            atom_site = self._self_energy(q)
            self._site = q, atom_site, sum_per_system(atom_site, state.system_idx, state.n_systems)
            self._site_key = key
        return self._site

    def forward(
        self, state: BatchState, *, neighbors: NeighborList | None = None, compute_stress: bool = True
    ) -> ForceOutput:
        q, atom_site, site = self._charges_and_site_energy(state)
        nl = pairs_for(state, neighbors, cutoff_A=self.cutoff_A)
        if nl.rows is not None:
            from hts_mlff.engine.kernels import scalar_type
            from hts_mlff.forcefields.pair_functions import buckingham_dsf_function

            function = buckingham_dsf_function(
                scalar_type(state.dtype), cutoff_A=self.cutoff_A, alpha_per_A=self.alpha_per_A, shift=self.shift
            )
            return rows_output(
                state,
                nl,
                pair_function=function,
                table=self._kernel_table,
                cutoff_A=self.cutoff_A,
                compute_stress=compute_stress,
                site_energy=(atom_site, site),
            )
        d, e_pair, f_over_r = self._pair_terms(state, nl, q)
        return pair_output(state, nl, d, e_pair, f_over_r, compute_stress=compute_stress, site_energy=site)

    def heat_current(
        self, state: BatchState, *, output: ForceOutput | None = None, neighbors: NeighborList | None = None
    ) -> torch.Tensor:
        """(n_systems, 3) heat current in eV·Å/fs, pairwise partition (as Lennard-Jones); each
        ion's constant self energy rides with its kinetic energy. From ``output``'s per-atom
        partition when it carries one (compiled path)."""
        if output is not None and output.atom_virial is not None:
            return partition_heat_current(state, output)
        q = self._charges(state)
        nl = pairs_for(state, neighbors, cutoff_A=self.cutoff_A)
        d, e_pair, f_over_r = self._pair_terms(state, nl, q)
        return pair_heat_current(state, nl, d, e_pair, f_over_r, atom_energy=self._self_energy(q))

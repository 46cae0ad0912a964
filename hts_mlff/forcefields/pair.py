"""What every pair potential does with its pair terms: forces, energy, stress and heat current.

A pair potential supplies, for the pairs of a neighbour list, the pair vectors d = r_j − r_i
(3, P) Å, the pair energies (P,) eV and f_over_r = −(dV/dr)/r (P,) eV/Å² (zero beyond its
cutoff); these helpers turn them into the engine's :class:`ForceOutput` and the heat current,
with one order of operations for every pair potential (results do not depend on where a system
sits in the batch). On the compiled path the potential supplies a pair function and a
per-type-pair parameter table instead (:class:`KernelTable`, :func:`rows_output`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.units import EV_PER_AMU_A2_PER_FS2


def pair_output(
    state: BatchState,
    nl: NeighborList,
    d: torch.Tensor,
    e_pair: torch.Tensor,
    f_over_r: torch.Tensor,
    *,
    compute_stress: bool,
    site_energy: torch.Tensor | None = None,
) -> ForceOutput:
    """Energies (plus per-system ``site_energy``, eV), forces F_j = −F_i = f_over_r · d and the
    virial stress σ = −(1/V) Σ_pairs f_over_r d ⊗ d."""
    fvec = f_over_r * d  # (3, n_pairs)
    energy = sum_per_system(e_pair, nl.pair_system, state.n_systems)
    if site_energy is not None:
        energy = energy + site_energy
    stress = None
    if compute_stress:
        virial = (-fvec[:, None, :] * d[None, :, :]).reshape(9, -1)  # (9, n_pairs)
        per_system = virial.new_zeros(9, state.n_systems).index_add_(1, nl.pair_system, virial)
        stress = per_system.t().reshape(-1, 3, 3) / state.volume[:, None, None]
    forces_t = state.positions.new_zeros(3, state.n_atoms)
    forces_t.index_add_(1, nl.pair_j, fvec)
    forces_t.index_add_(1, nl.pair_i, -fvec)
    return ForceOutput(energy=energy, forces=forces_t.t().contiguous(), stress=stress)


def pair_heat_current(
    state: BatchState,
    nl: NeighborList,
    d: torch.Tensor,
    e_pair: torch.Tensor,
    f_over_r: torch.Tensor,
    *,
    atom_energy: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""(n_systems, 3) heat current J in eV·Å/fs with the pairwise energy partition.

    .. math::

        \mathbf{J} = \sum_i e_i \mathbf{v}_i
          + \tfrac12 \sum_{\text{pairs } ij} \mathbf{r}_{ij}\,[\mathbf{F}_{ij}\cdot(\mathbf{v}_i + \mathbf{v}_j)],
        \qquad e_i = \tfrac12 m_i v_i^2 + \tfrac12 \sum_j \phi(r_{ij}) + e_i^\text{site},

    J = d/dt Σ_i r_i e_i: the convective term plus the virial term, each pair once; ``atom_energy``
    (n_atoms,) eV is a constant per-atom term (e.g. a Coulomb self energy). Velocities are taken
    in each replica's centre-of-mass frame, so a drifting crystal adds no constant ē·Σv_i to J.
    """
    velocities = _centre_of_mass_velocities(state)
    v_t = velocities.t()
    v_sum = v_t.index_select(1, nl.pair_i) + v_t.index_select(1, nl.pair_j)  # (3, n_pairs)
    # r_ij (F_ij · (v_i + v_j)) with r_ij = −d and F_ij = −f_over_r · d.
    virial = d * (f_over_r * (d * v_sum).sum(0))
    per_pair = 0.5 * (virial + e_pair * v_sum)  # half of each pair's energy rides on each atom
    site = 0.5 * state.masses * (velocities * velocities).sum(1) * EV_PER_AMU_A2_PER_FS2
    if atom_energy is not None:
        site = site + atom_energy
    out = v_t.new_zeros(3, state.n_systems)
    out.index_add_(1, nl.pair_system, per_pair)
    out.index_add_(1, state.system_idx, v_t * site)
    return out.t().contiguous()


class KernelTable:
    """Per-type-pair parameters of the compiled path, rebuilt when the state's species change.

    Types are the indices of the species present, in increasing atomic number; ``build`` maps
    the (T,) atomic numbers of those species to a (T, T, 4) table on the state's device and dtype.
    """

    def __init__(self, build: Callable[[torch.Tensor, torch.device, torch.dtype], torch.Tensor]) -> None:
        self.build = build
        self._key: tuple | None = None
        self._value: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, state: BatchState) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_atoms,) int32 types and the (T, T, 4) table for ``state``."""
        z = state.atomic_numbers
        key = (z.data_ptr(), z.shape[0], state.device, state.dtype)
        if self._key != key:
            species = torch.unique(z)
            types = torch.searchsorted(species, z).to(torch.int32).contiguous()
            table = self.build(species, state.device, state.dtype).contiguous()
            self._key, self._value = key, (types, table)
        return self._value


def rows_output(
    state: BatchState,
    nl: NeighborList,
    *,
    pair_function: Any,
    table: KernelTable,
    cutoff_A: float,
    compute_stress: bool,
    site_energy: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> ForceOutput:
    """:func:`pair_output` on the compiled path: one pass over ``nl.rows`` with ``pair_function``
    (:mod:`hts_mlff.forcefields.pair_functions`), plus ``site_energy`` ((n_atoms,) per atom and
    (n_systems,) their sums, eV). A stress step also returns the per-atom partition."""
    from hts_mlff.engine.kernels.pair import pair_rows

    types, parameters = table(state)
    sums = pair_rows(
        state,
        nl.rows,
        pair_function=pair_function,
        parameters=parameters,
        types=types,
        cutoff_A=cutoff_A,
        compute_virial=compute_stress,
    )
    energy, atom_energy = sums.energy, None
    if compute_stress:
        atom_energy = sums.atom_energy if site_energy is None else sums.atom_energy + site_energy[0]
    if site_energy is not None:
        energy = energy + site_energy[1]
    return ForceOutput(
        energy=energy,
        forces=sums.forces,
        stress=sums.virial / state.volume[:, None, None] if compute_stress else None,
        min_pair_distance_A=sums.min_pair_distance_A,
        max_force_eV_per_A=sums.max_force_eV_per_A,
        atom_energy=atom_energy,
        atom_virial=sums.atom_virial if compute_stress else None,
    )


def _centre_of_mass_velocities(state: BatchState) -> torch.Tensor:
    momentum = sum_per_system(state.velocities * state.masses[:, None], state.system_idx, state.n_systems)
    mass = sum_per_system(state.masses, state.system_idx, state.n_systems)
    return state.velocities - (momentum / mass[:, None])[state.system_idx]


def partition_heat_current(state: BatchState, output: ForceOutput) -> torch.Tensor:
    r"""(n_systems, 3) heat current (eV·Å/fs) from a per-atom partition, no pair visited:

    .. math::

        \mathbf{J} = \sum_i (\tfrac12 m_i v_i^2 + e_i)\,\mathbf{v}_i - \sum_i W_i \mathbf{v}_i,
        \qquad W_i = -\tfrac12 \sum_j \frac{f(r_{ij})}{r_{ij}}\, \mathbf{d}_{ij} \otimes \mathbf{d}_{ij},

    the same current as :func:`pair_heat_current` (each pair's ½ r_ij F_ij·(v_i + v_j) is
    ½ (f/r) d (d·v_i) + ½ (f/r) d (d·v_j), one half on each end), velocities in each replica's
    centre-of-mass frame. ``output``: a stress-step evaluation carrying ``atom_energy`` (site
    terms included) and ``atom_virial``.
    """
    velocities = _centre_of_mass_velocities(state)
    kinetic = 0.5 * state.masses * (velocities * velocities).sum(1) * EV_PER_AMU_A2_PER_FS2
    per_atom = (kinetic + output.atom_energy)[:, None] * velocities
    per_atom = per_atom - torch.einsum("aij,aj->ai", output.atom_virial, velocities)
    return sum_per_system(per_atom, state.system_idx, state.n_systems)

"""Build force-field objects from their campaign specs."""

from __future__ import annotations

from ase.data import atomic_numbers

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.forcefields.lennard_jones import LennardJones, PairParameters
from hts_mlff.spec.model import LennardJonesSpec


def build_forcefield(spec: LennardJonesSpec) -> ForceField:
    """The force field a campaign's ``forcefields`` entry describes."""
    if isinstance(spec, LennardJonesSpec):
        pairs = []
        for pair in spec.pairs:
            a, b = (atomic_numbers[s] for s in pair.species)
            pairs.append(PairParameters(a, b, pair.epsilon_eV, pair.sigma_A))
        return LennardJones(
            spec.epsilon_eV, sigma_A=spec.sigma_A, cutoff_A=spec.cutoff_A, shift=spec.shift, pairs=pairs
        )
    raise TypeError(f"no force field for spec {type(spec).__name__}")

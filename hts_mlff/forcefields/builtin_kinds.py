"""The build halves of the force-field kinds shipped with hts_mlff (see :mod:`hts_mlff.forcefields.kinds`)."""

from __future__ import annotations

from pathlib import Path

from ase.data import atomic_numbers

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.spec.model import AseCalculatorSpec, BuckinghamDSFSpec, GNNSpec, LennardJonesSpec, TorchSimSpec


def build_lennard_jones(spec: LennardJonesSpec, base_dir: Path) -> ForceField:
    from hts_mlff.forcefields.lennard_jones import LennardJones, PairParameters

    pairs = []
    for pair in spec.pairs:
        a, b = (atomic_numbers[s] for s in pair.species)
        pairs.append(PairParameters(a, b, pair.epsilon_eV, pair.sigma_A))
    return LennardJones(spec.epsilon_eV, sigma_A=spec.sigma_A, cutoff_A=spec.cutoff_A, shift=spec.shift, pairs=pairs)


def build_buckingham_dsf(spec: BuckinghamDSFSpec, base_dir: Path) -> ForceField:
    from hts_mlff.forcefields.buckingham_dsf import BuckinghamDSF, BuckinghamPair

    return BuckinghamDSF(
        {atomic_numbers[symbol]: q for symbol, q in spec.charges_e.items()},
        pairs=[
            BuckinghamPair(atomic_numbers[a], atomic_numbers[b], p.a_eV, p.rho_A, p.c_eV_A6)
            for p in spec.pairs
            for a, b in [p.species]
        ],
        cutoff_A=spec.cutoff_A,
        alpha_per_A=spec.alpha_per_A,
        shift=spec.shift,
    )


def build_gnn(spec: GNNSpec, base_dir: Path) -> ForceField:
    from hts_mlff.forcefields.checkpoint import load

    return load(base_dir / spec.checkpoint)


def build_ase(spec: AseCalculatorSpec, base_dir: Path) -> ForceField:
    from hts_mlff.forcefields.adapters import AseCalculatorForceField, describe, import_object

    factory = import_object(spec.calculator)
    parameters = dict(spec.parameters)
    return AseCalculatorForceField(
        lambda: factory(**parameters), description=describe(spec.calculator, parameters), cutoff_A=spec.cutoff_A
    )


def build_torchsim(spec: TorchSimSpec, base_dir: Path) -> ForceField:
    from hts_mlff.forcefields.adapters import TorchSimForceField, describe, import_object, require_torchsim

    require_torchsim()  # before importing the model's module
    model = import_object(spec.model)(**spec.parameters)
    return TorchSimForceField(model, description=describe(spec.model, spec.parameters), cutoff_A=spec.cutoff_A)

"""Build force-field objects from their campaign specs."""

from __future__ import annotations

from pathlib import Path

from ase.data import atomic_numbers

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.forcefields.adapters import (
    AseCalculatorForceField,
    TorchSimForceField,
    describe,
    import_object,
    require_torchsim,
)
from hts_mlff.forcefields.buckingham_dsf import BuckinghamDSF, BuckinghamPair
from hts_mlff.forcefields.checkpoint import load
from hts_mlff.forcefields.lennard_jones import LennardJones, PairParameters
from hts_mlff.spec.model import (
    AseCalculatorSpec,
    BuckinghamDSFSpec,
    ForceFieldSpec,
    GNNSpec,
    LennardJonesSpec,
    TorchSimSpec,
)
from hts_mlff.spec.trust import require_approved


def build_forcefield(spec: ForceFieldSpec, *, base_dir: Path | None = None) -> ForceField:
    """The force field a campaign's ``forcefields`` entry describes (paths relative to ``base_dir``).

    ``kind: ase`` and ``kind: torchsim`` import code: only a path approved in this process
    (:func:`hts_mlff.spec.trust.approve_campaign`) or on the user's allow-list is imported,
    else :class:`hts_mlff.spec.trust.CodeNotAllowedError` is raised before any import.
    """
    if isinstance(spec, LennardJonesSpec):
        pairs = []
        for pair in spec.pairs:
            a, b = (atomic_numbers[s] for s in pair.species)
            pairs.append(PairParameters(a, b, pair.epsilon_eV, pair.sigma_A))
        return LennardJones(
            spec.epsilon_eV, sigma_A=spec.sigma_A, cutoff_A=spec.cutoff_A, shift=spec.shift, pairs=pairs
        )
    if isinstance(spec, BuckinghamDSFSpec):
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
    if isinstance(spec, GNNSpec):
        return load((base_dir or Path.cwd()) / spec.checkpoint)
    if isinstance(spec, AseCalculatorSpec):
        require_approved(spec.calculator, what="an ase force field")
        factory = import_object(spec.calculator)
        parameters = dict(spec.parameters)
        return AseCalculatorForceField(
            lambda: factory(**parameters), description=describe(spec.calculator, parameters), cutoff_A=spec.cutoff_A
        )
    if isinstance(spec, TorchSimSpec):
        require_approved(spec.model, what="a torchsim force field")
        require_torchsim()  # before importing the model's module
        model = import_object(spec.model)(**spec.parameters)
        return TorchSimForceField(model, description=describe(spec.model, spec.parameters), cutoff_A=spec.cutoff_A)
    raise TypeError(f"no force field for spec {type(spec).__name__}")

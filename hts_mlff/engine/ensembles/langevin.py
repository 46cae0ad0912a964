"""NVT: Langevin dynamics in the BAOAB splitting, momentum-conserving O-step, per-replica (or
per-atom) targets (:meth:`~hts_mlff.engine.integrators.Propagator.langevin_first_half`)."""

from __future__ import annotations

from hts_mlff.engine.integrators import Propagator
from hts_mlff.engine.md_state import MDState


def init(md: MDState, propagator: Propagator) -> None:
    """Nothing beyond current forces."""


def step(md: MDState, propagator: Propagator, targets, *, stress: bool) -> None:
    propagator.langevin_first_half(
        md, temperature_K=targets.temperature_K, atom_temperature_K=targets.atom_temperature_K
    )
    propagator.forces(md, stress=stress)
    propagator.half_kick(md)

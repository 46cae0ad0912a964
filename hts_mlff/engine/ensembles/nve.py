"""NVE: velocity Verlet (kick, drift, forces, kick)."""

from __future__ import annotations

from hts_mlff.engine.integrators import Propagator
from hts_mlff.engine.md_state import MDState


def init(md: MDState, propagator: Propagator) -> None:
    """Nothing beyond current forces."""


def step(md: MDState, propagator: Propagator, targets, *, stress: bool) -> None:
    propagator.half_kick(md)
    propagator.drift(md, time_fs=propagator.timestep_fs)
    propagator.forces(md, stress=stress)
    propagator.half_kick(md)

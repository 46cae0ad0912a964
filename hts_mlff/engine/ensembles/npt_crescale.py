"""NPT: BAOAB Langevin plus the isotropic stochastic cell-rescaling barostat (Bernetti & Bussi
2020; :meth:`~hts_mlff.engine.integrators.Propagator.cell_rescale`), per-replica pressure."""

from __future__ import annotations

from hts_mlff.engine.integrators import Propagator
from hts_mlff.engine.md_state import MDState

AXES = "xyz"


def init(md: MDState, propagator: Propagator) -> None:
    """The barostat reads the stress of the current positions: evaluate it if the last
    evaluation had none (e.g. after an NVT phase)."""
    if md.output is None or md.output.stress is None:
        propagator.forces(md, stress=True)


def step(md: MDState, propagator: Propagator, targets, *, stress: bool, axes: str = AXES) -> None:
    propagator.langevin_first_half(
        md, temperature_K=targets.temperature_K, atom_temperature_K=targets.atom_temperature_K
    )
    propagator.cell_rescale(md, temperature_K=targets.temperature_K, axes=axes)
    propagator.forces(md, stress=True)
    propagator.half_kick(md)

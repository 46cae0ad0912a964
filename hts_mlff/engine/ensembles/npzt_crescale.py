"""NP_zT: as :mod:`~hts_mlff.engine.ensembles.npt_crescale`, with only the cell's z length
following P_zz (solid–liquid coexistence along z keeps the crystal's lateral lattice)."""

from __future__ import annotations

from hts_mlff.engine.ensembles import npt_crescale
from hts_mlff.engine.integrators import Propagator
from hts_mlff.engine.md_state import MDState

init = npt_crescale.init


def step(md: MDState, propagator: Propagator, targets, *, stress: bool) -> None:
    npt_crescale.step(md, propagator, targets, stress=stress, axes="z")

"""Batched torch MD engine. Imports neither dask nor zarr."""

from hts_mlff.engine.forcefield import ForceField, ForceOutput, check_forcefield
from hts_mlff.engine.guard import FailureReason, GuardLimits
from hts_mlff.engine.md import MDProtocol, PackResult, run_md
from hts_mlff.engine.minimize import fire_minimize
from hts_mlff.engine.state import BatchState, state_from_arrays

__all__ = [
    "BatchState",
    "FailureReason",
    "ForceField",
    "ForceOutput",
    "GuardLimits",
    "MDProtocol",
    "PackResult",
    "check_forcefield",
    "fire_minimize",
    "run_md",
    "state_from_arrays",
]

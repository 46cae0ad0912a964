"""The state one MD step works on: the pack's atoms plus what the integrator carries along.

:class:`MDState` wraps the :class:`~hts_mlff.engine.state.BatchState` (positions, velocities,
cell, masses, species) with the last force evaluation, each replica's own targets, which
replicas are still integrated, and the step. Ensembles (:mod:`hts_mlff.engine.ensembles`) read
and advance it; the schedule (:mod:`hts_mlff.engine.schedule`) turns its targets into each
step's thermostat targets; the drivers (:mod:`hts_mlff.engine.md`, :mod:`hts_mlff.engine.refill`)
own it. Tensors here are replaced, never modified in place, when a target or the active set
changes, so a cache keyed on a tensor's identity is never stale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hts_mlff.engine.forcefield import ForceOutput
from hts_mlff.engine.state import BatchState


@dataclass
class MDState:
    """One pack in the middle of its run.

    Attributes:
        system: the atoms (modified in place by the steps).
        temperature_K: (n_systems,) each replica's own target temperature (its task's), K.
        pressure_bar: (n_systems,) each replica's target pressure, bar.
        active: (n_systems,) bool, replicas still integrated (failed and finished ones are frozen).
        step: pack steps done so far.
        output: the force field's evaluation at the current positions (None before the first).
    """

    system: BatchState
    temperature_K: torch.Tensor
    pressure_bar: torch.Tensor
    active: torch.Tensor
    step: int = 0
    output: ForceOutput | None = None

    def with_targets(self, slot: int, *, temperature_K: float, pressure_bar: float) -> None:
        """Replica ``slot`` takes a new task's targets (new tensors: the old ones stay as they were)."""
        temperature, pressure = self.temperature_K.clone(), self.pressure_bar.clone()
        temperature[slot], pressure[slot] = temperature_K, pressure_bar
        self.temperature_K, self.pressure_bar = temperature, pressure

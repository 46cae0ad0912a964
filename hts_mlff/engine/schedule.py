"""What each step runs: the ensemble and the thermostat targets, phase by phase.

A :class:`Schedule` is a list of phases over pack steps — by default the two-phase preparation
(``melt_half``), the rest of equilibration, production — each with an ensemble and a target
program. A target program turns the replicas' own targets (``md.temperature_K``) into the
step's thermostat targets; it is a function registered in :data:`TARGET_PROGRAMS`:

* ``constant``: every replica at its own target;
* ``ramp``: linear from the replica's target to ``final_temperature_K`` over the phase;
* ``melt_half``: atoms at fractional z ≥ 1 − ``fraction`` at ``melt_temperature_K``, the rest
  at the replica's target (per atom; a fraction of 1 melts the whole cell).

The drivers ask :meth:`Schedule.at` once per step and hand the answer to the ensemble's step:
no branch of a loop knows about ramps or melting. A new target program is a function plus its
line in :data:`TARGET_PROGRAMS` (and, for campaigns, the protocol field that asks for it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from hts_mlff.engine.ensembles import Ensemble, ensemble_named
from hts_mlff.engine.md_state import MDState


@dataclass(frozen=True)
class StepTargets:
    """One step's ensemble and thermostat targets: (n_systems,) K per replica, and (n_atoms,) K
    per atom where a program sets them (None: per replica)."""

    ensemble: Ensemble
    temperature_K: torch.Tensor
    atom_temperature_K: torch.Tensor | None = None


#: (md, phase, step) → ((n_systems,) per-replica targets, (n_atoms,) per-atom targets or None).
TargetProgram = Callable[[MDState, "Phase", int], tuple[torch.Tensor, torch.Tensor | None]]


def constant(md: MDState, phase: Phase, step: int) -> tuple[torch.Tensor, None]:
    """Every replica at its own target."""
    return md.temperature_K, None


def ramp(md: MDState, phase: Phase, step: int) -> tuple[torch.Tensor, None]:
    """Linear from each replica's target to ``final_temperature_K`` over the phase."""
    fraction = (step - phase.options["from_step"]) / max(phase.options["over_steps"], 1)
    own = md.temperature_K
    return own + (phase.options["final_temperature_K"] - own) * fraction, None


def melt_half(md: MDState, phase: Phase, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two-phase preparation's per-atom targets (:func:`melt_half_temperatures`)."""
    atoms = melt_half_temperatures(
        md.system, md.temperature_K, phase.options["melt_temperature_K"], fraction=phase.options["fraction"]
    )
    return md.temperature_K, atoms


#: name → (program, True when it depends on the pack step or the atoms' positions). A refilled
#: slot runs on its own clock, so only step-independent programs can refill.
TARGET_PROGRAMS: dict[str, tuple[TargetProgram, bool]] = {
    "constant": (constant, False),
    "ramp": (ramp, True),
    "melt_half": (melt_half, True),
}


def melt_half_temperatures(
    state, target_K: torch.Tensor, melt_K: float | None, *, fraction: float = 0.5
) -> torch.Tensor:
    """(n_atoms,) thermostat targets of the two-phase preparation: ``melt_K`` for atoms at
    fractional z ≥ 1 − ``fraction`` (wrapped into the cell), the replica's target below. Depends
    only on the current state, so a resumed preparation continues exactly."""
    inverse = torch.linalg.inv(state.cell)[state.system_idx]  # (n_atoms, 3, 3)
    fractional_z = torch.einsum("ak,akj->aj", state.positions, inverse)[:, 2]
    upper = (fractional_z - torch.floor(fractional_z)) >= 1.0 - fraction
    below = target_K[state.system_idx]
    return torch.where(upper, torch.full_like(below, float(melt_K)), below)


@dataclass(frozen=True)
class Phase:
    """Pack steps [start_step, stop_step) in one ensemble under one target program."""

    name: str
    start_step: int
    stop_step: int
    ensemble: Ensemble
    program: str = "constant"
    options: dict[str, Any] = field(default_factory=dict)


class Schedule:
    """The phases of a run, in order, covering steps [0, total)."""

    def __init__(self, phases: list[Phase]) -> None:
        self.phases = [p for p in phases if p.stop_step > p.start_step]
        for p in self.phases:
            if p.program not in TARGET_PROGRAMS:
                raise ValueError(
                    f"phase {p.name}: unknown target program {p.program!r}; one of {sorted(TARGET_PROGRAMS)}"
                )
        self._index = 0

    @classmethod
    def from_protocol(cls, protocol: Any) -> Schedule:
        """The phases of an :class:`~hts_mlff.engine.md.MDProtocol`: the preparation (its first
        ``melt_steps``, NVT), equilibration (by default NPT when production is NPT, else NVT),
        production (ramped when ``final_temperature_K`` is set)."""
        axes = protocol.barostat_axes
        production = ensemble_named(protocol.ensemble, barostat_axes=axes)
        equilibration = ensemble_named(equilibration_ensemble(protocol), barostat_axes=axes)
        equil, total = protocol.equilibration_steps, protocol.total_steps
        # the preparation runs its own steps first (within equilibration where campaigns ask)
        melt = protocol.melt_steps if protocol.melt_temperature_K is not None else 0
        ramped = protocol.final_temperature_K is not None
        return cls(
            [
                Phase(
                    "preparation",
                    0,
                    melt,
                    ensemble_named("nvt"),
                    "melt_half",
                    {"melt_temperature_K": protocol.melt_temperature_K, "fraction": protocol.melt_fraction},
                ),
                Phase("equilibration", melt, equil, equilibration),
                Phase(
                    "production",
                    max(melt, equil),
                    total,
                    production,
                    "ramp" if ramped else "constant",
                    {
                        "final_temperature_K": protocol.final_temperature_K,
                        "from_step": equil,
                        "over_steps": protocol.production_steps,
                    }
                    if ramped
                    else {},
                ),
            ]
        )

    def phase_at(self, step: int) -> Phase:
        """The phase that runs pack step ``step`` (the last one past the end)."""
        index = self._index if self.phases[self._index].start_step <= step else 0
        while index + 1 < len(self.phases) and step >= self.phases[index].stop_step:
            index += 1
        self._index = index
        return self.phases[index]

    def at(self, md: MDState) -> StepTargets:
        """The ensemble and targets of the step from ``md.step``."""
        phase = self.phase_at(md.step)
        temperature, atoms = TARGET_PROGRAMS[phase.program][0](md, phase, md.step)
        return StepTargets(ensemble=phase.ensemble, temperature_K=temperature, atom_temperature_K=atoms)

    def refill_problem(self) -> str | None:
        """Why slots on their own clocks cannot share this schedule (None: they can): one ensemble
        throughout and only step-independent programs."""
        names = []
        for p in self.phases:
            if p.ensemble.name not in names:
                names.append(p.ensemble.name)
        if len(names) > 1:
            return f"{' then '.join(names)} (one ensemble throughout)"
        moving = [p for p in self.phases if TARGET_PROGRAMS[p.program][1]]
        if moving:
            p = moving[0]
            asked = f", asked by {next(iter(p.options))}" if p.options else ""  # the first option asks
            return f"a {p.program} phase ({p.name}{asked}): its targets follow the pack step"
        return None


def equilibration_ensemble(protocol: Any) -> str:
    """The protocol's equilibration ensemble: as given, else NPT before an NPT production, else NVT."""
    return protocol.equilibration_ensemble or ("npt" if protocol.ensemble == "npt" else "nvt")

"""Packs that refill: a pack slot whose task finished or failed takes the next pending task.

A pack of ``n_slots`` replicas can run ``n_tasks ≥ n_slots`` tasks of one system and force
field (a stability sweep loses most replicas early; a refilled slot keeps the pack full). Each
task keeps what makes its trajectory its own, so a refilled task is bit-identical to the same
task run alone:

* its random stream: key of its own, draws indexed by its own step (step − the pack step it
  started at, :meth:`hts_mlff.engine.rng.ReplicaRandom.assign`);
* its schedule: a task starts only at pack steps that are multiples of both the sample and the
  guard interval, so its samples and guard checks fall on its own steps exactly as alone;
  the guard checks a slot only at its own check steps;
* its records: observers write each slot's own frame; a finished slot's row of their results
  is kept, then cleared (:meth:`hts_mlff.engine.observers.Observer.reset_replica`).

What a refill needs from a protocol: one ensemble throughout (equilibration as production), no
two-phase preparation and no temperature ramp (each a function of the pack step), and observers
without per-replica set-up (:attr:`Observer.refillable`). :func:`refill_problem` says what stands
in the way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass
class ReplicaStart:
    """Where a task starts: (n_atoms, 3) positions and (3, 3) cell, Å (built, and relaxed when the
    protocol minimises, exactly as if the task ran alone)."""

    positions_A: torch.Tensor
    cell_A: torch.Tensor


@dataclass
class Refill:
    """The tasks of a refilling pack: the first ``n_slots`` start in the pack's state, the rest
    wait. Per task (n_tasks,): target temperature (K), pressure (bar), random key.

    Attributes:
        load: task index (≥ n_slots) → its :class:`ReplicaStart`; called when a slot frees.
    """

    temperature_K: Sequence[float]
    pressure_bar: Sequence[float]
    keys: Sequence[int]
    load: Callable[[int], ReplicaStart]

    @property
    def n_tasks(self) -> int:
        return len(self.keys)


def refill_problem(protocol: Any, observers: Sequence[Any]) -> str | None:
    """Why a pack of this protocol and these observers cannot refill (None: it can)."""
    equilibration = protocol.equilibration_ensemble or ("npt" if protocol.ensemble == "npt" else "nvt")
    if protocol.equilibration_steps > 0 and equilibration != protocol.ensemble:
        return f"equilibration in {equilibration} before {protocol.ensemble} production (one ensemble throughout)"
    if protocol.melt_steps > 0:
        return "a two-phase preparation (melt_half)"
    if protocol.final_temperature_K is not None:
        return "a temperature ramp (final_temperature_K)"
    fixed = sorted({type(o).__name__ for o in observers if not o.refillable})
    if fixed:
        return f"observers with per-replica set-up ({', '.join(fixed)})"
    return None


def start_interval(protocol: Any) -> int:
    """Pack steps at which a task may start: multiples of the sample and guard intervals."""
    guard_every = protocol.guard_every_steps or protocol.sample_every_steps
    return math.lcm(int(protocol.sample_every_steps), int(guard_every))


class SlotBook:
    """Which task each slot runs and since which pack step; the results of finished tasks.

    Attributes:
        task: (n_slots,) task index of each slot (−1: idle, nothing left to run).
        start_step: (n_slots,) pack step at which the slot's task started.
        next_task: the first task not yet started.
        results: name → (n_tasks, …) arrays of finished tasks (allocated at the first harvest).
        steps_run: (n_tasks,) steps each task was integrated (its own failure step or the total).
    """

    def __init__(self, n_slots: int, n_tasks: int, *, total_steps: int) -> None:
        if n_tasks < n_slots:
            raise ValueError(f"{n_tasks} tasks for {n_slots} slots")
        self.n_tasks = n_tasks
        self.total_steps = int(total_steps)
        self.task = np.arange(n_slots, dtype=np.int64)
        self.start_step = np.zeros(n_slots, dtype=np.int64)
        self.next_task = n_slots
        self.results: dict[str, np.ndarray] = {}
        self.steps_run = np.zeros(n_tasks, dtype=np.int64)
        self.n_harvested = 0

    @property
    def all_done(self) -> bool:
        return self.n_harvested == self.n_tasks

    def own_steps(self, step: int) -> np.ndarray:
        """(n_slots,) each slot's own step at pack step ``step``."""
        return step - self.start_step

    def finishing(self, step: int) -> np.ndarray:
        """(n_slots,) bool: slots whose task reaches its last step at pack step ``step``."""
        return (self.task >= 0) & (self.own_steps(step) == self.total_steps)

    def harvest(self, slot: int, arrays: dict[str, np.ndarray], *, steps_run: int) -> None:
        """Keep the finished task of ``slot`` (its per-replica arrays) and mark the slot idle."""
        task = int(self.task[slot])
        for name, value in arrays.items():
            value = np.asarray(value)
            if name not in self.results:
                self.results[name] = np.zeros((self.n_tasks, *value.shape), dtype=value.dtype)
            self.results[name][task] = value
        self.steps_run[task] = steps_run
        self.task[slot] = -1
        self.n_harvested += 1

    def assign(self, slot: int, *, step: int) -> int | None:
        """Give idle ``slot`` the next pending task from pack step ``step``; None when none is left."""
        if self.next_task >= self.n_tasks:
            return None
        task = self.next_task
        self.next_task += 1
        self.task[slot] = task
        self.start_step[slot] = step
        return task

    def state_dict(self) -> dict[str, Any]:
        return {
            "task": torch.from_numpy(self.task.copy()),
            "start_step": torch.from_numpy(self.start_step.copy()),
            "next_task": self.next_task,
            "n_harvested": self.n_harvested,
            "steps_run": torch.from_numpy(self.steps_run.copy()),
            "results": {name: torch.from_numpy(value.copy()) for name, value in self.results.items()},
        }

    def load_state_dict(self, data: dict[str, Any]) -> None:
        self.task = data["task"].numpy().copy()
        self.start_step = data["start_step"].numpy().copy()
        self.next_task = int(data["next_task"])
        self.n_harvested = int(data["n_harvested"])
        self.steps_run = data["steps_run"].numpy().copy()
        self.results = {name: value.numpy().copy() for name, value in data["results"].items()}

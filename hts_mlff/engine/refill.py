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

What a refill needs from a protocol: a schedule with one ensemble throughout (equilibration as
production) and targets that do not follow the pack step (no two-phase preparation, no ramp:
:meth:`~hts_mlff.engine.schedule.Schedule.refill_problem`), and observers without per-replica
set-up (:attr:`Observer.refillable`). :func:`refill_problem` says what stands in the way.
:func:`drive_refilling` is the driver: the same steps as a plain pack
(:class:`~hts_mlff.engine.pack_run.PackRun`), each slot checked and sampled on its own clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.pack_run import PackRun, Progress, maxwell_boltzmann_velocities
from hts_mlff.engine.schedule import Schedule


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
    problem = Schedule.from_protocol(protocol).refill_problem()
    if problem is not None:
        return problem
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


def drive_refilling(run: PackRun, refill: Refill, *, hooks: Any) -> tuple[dict[str, np.ndarray], int]:
    """Run ``refill.n_tasks`` tasks through the pack's slots; returns one row per task and the
    atom-steps integrated. Each slot's guard checks and samples fall on its task's own steps."""
    problem = refill_problem(run.protocol, run.observers)
    if problem is not None:
        raise ValueError(f"this pack cannot refill its slots: {problem}")
    md = run.md
    book = SlotBook(md.system.n_systems, refill.n_tasks, total_steps=run.protocol.total_steps)
    slots = _Slots(run, refill, book)
    resumed = run.begin(hooks.resume_from)
    if resumed is not None:
        slots.resume(resumed)
    run.propagator.forces(md, stress=True)
    if md.step == 0 and run.is_sample(0):
        slots.check(0)
        slots.turn_over(0, checked=True)
    progress = Progress(hooks.on_progress, every=run.protocol.sample_every_steps)
    every = hooks.checkpoint_every_steps
    while not book.all_done:
        step = run.advance()
        checked = run.is_check(step)
        if checked:
            slots.check(step)
        slots.turn_over(step, checked=checked)
        progress.tick()
        if hooks.on_checkpoint is not None and every > 0 and step % every == 0 and not book.all_done:
            hooks.on_checkpoint(run.checkpoint(slots=book.state_dict()))
    progress.flush()
    state = md.system
    return book.results, int(state.n_atoms // state.n_systems * book.steps_run.sum())


class _Slots:
    """The refilling driver's work on slots: checks on each slot's own clock, harvesting the
    tasks that ended, starting pending ones."""

    def __init__(self, run: PackRun, refill: Refill, book: SlotBook) -> None:
        self.run, self.refill, self.book = run, refill, book
        self.interval = start_interval(run.protocol)
        self.offsets = run.md.system.system_offsets().tolist()

    def resume(self, checkpoint: dict[str, Any]) -> None:
        """Restore the book; refilled slots take back their task's key, targets and start."""
        if "slots" not in checkpoint:
            raise ValueError("the checkpoint is not one of a refilling pack")
        book, md, refill = self.book, self.run.md, self.refill
        book.load_state_dict(checkpoint["slots"])
        for slot, task in enumerate(book.task.tolist()):
            if task >= md.system.n_systems:
                self.run.random.assign(slot, key=refill.keys[task], start_step=int(book.start_step[slot]))
                md.with_targets(slot, temperature_K=refill.temperature_K[task], pressure_bar=refill.pressure_bar[task])

    def check(self, step: int, *, replicas: np.ndarray | None = None) -> None:
        """Guard and observers at pack step ``step``, per slot at its own step (``replicas``: only
        these slots, e.g. those starting now)."""
        book, protocol = self.book, self.run.protocol
        equil, sample_every = protocol.equilibration_steps, protocol.sample_every_steps
        own = book.own_steps(step)
        samples = (book.task >= 0) & (own >= equil) & ((own - equil) % sample_every == 0)
        checks = (book.task >= 0) & ((own % self.run.guard_every == 0) | samples)
        if replicas is not None:
            samples, checks = samples & replicas, checks & replicas
        if not checks.any():
            return
        mask = torch.as_tensor(checks, device=self.run.md.system.device)
        frame = np.where(samples, (own - equil) // sample_every, -1)
        self.run.check(step, frame=frame, sampling=bool(samples.any()), replicas=mask)

    def turn_over(self, step: int, *, checked: bool) -> None:
        """Harvest what ended at ``step``; at a start step, idle slots take pending tasks (again
        while a task fails at its own first check)."""
        while True:
            self._harvest(step, checked=checked)
            checked = True  # the tasks that started were checked at their own step 0
            if step % self.interval or not (self.book.task < 0).any() or not self._start_tasks(step):
                return

    def _harvest(self, step: int, *, checked: bool) -> None:
        """Keep the tasks of slots that finished at ``step`` or have failed (only a check freezes a
        slot: ``checked``); retire their slots."""
        run, book = self.run, self.book
        ended = book.finishing(step)
        if checked:  # one device-to-host copy at check steps only
            ended = ended | ((book.task >= 0) & (run.guard.failure_step.cpu().numpy() >= 0))
        slots = np.flatnonzero(ended).tolist()
        if not slots:
            return
        pack = run.pack_arrays()
        per_observer = run.observer_results()
        for slot in slots:
            start = int(book.start_step[slot])
            arrays = {name: value[slot] for name, value in pack.items()}
            if arrays["failure_step"] >= 0:
                arrays["failure_step"] = arrays["failure_step"] - start
            for results in per_observer:
                arrays.update({name: value[slot] for name, value in results.items()})
            steps_run = int(arrays["failure_step"]) if arrays["failure_step"] >= 0 else step - start
            book.harvest(slot, arrays, steps_run=steps_run)
            run.guard.retire(slot)
        run.set_active()

    def _start_tasks(self, step: int) -> bool:
        """Idle slots take the pending tasks from ``step``; True when any did."""
        run, book, refill, offsets = self.run, self.book, self.refill, self.offsets
        md, state = run.md, run.md.system
        dev, dtype = state.device, state.dtype
        started_now = np.zeros(state.n_systems, dtype=bool)
        positions, cell = state.positions.detach().clone(), state.cell.detach().clone()
        for slot in np.flatnonzero(book.task < 0).tolist():
            task = book.assign(slot, step=step)
            if task is None:
                break
            begin = refill.load(task)
            positions[offsets[slot] : offsets[slot + 1]] = begin.positions_A.to(device=dev, dtype=dtype)
            cell[slot] = begin.cell_A.to(device=dev, dtype=dtype)
            run.random.assign(slot, key=refill.keys[task], start_step=step)
            md.with_targets(slot, temperature_K=refill.temperature_K[task], pressure_bar=refill.pressure_bar[task])
            started_now[slot] = True
        if not started_now.any():
            return False
        state.positions, state.cell = positions, cell
        # one draw at this step is every starting task's own step 0; the other slots keep theirs
        running_velocities = state.velocities
        maxwell_boltzmann_velocities(state, run.random, temperature_K=run.initial_temperatures(), step=step)
        starting = torch.as_tensor(started_now, device=dev)[state.system_idx][:, None]
        state.velocities = torch.where(starting, state.velocities, running_velocities)
        for slot in np.flatnonzero(started_now).tolist():
            atoms = slice(offsets[slot], offsets[slot + 1])
            run.guard.restart(slot, state, atoms=atoms)
            run.neighbors.invalidate(slot, atoms=atoms)
            for observer in run.observers:
                observer.reset_replica(slot, atoms=atoms)
        run.set_active()
        run.propagator.forces(md, stress=True)
        if run.is_sample(0):  # as a pack's own start: the first sample before the first step
            self.check(step, replicas=started_now)
        return True

"""Run one pack: equilibration then production MD of many replicas in one batched loop.

This is the engine's entry point; it knows nothing of Dask, Zarr or campaign files. Its
inputs are a state, a force field, a protocol and per-replica targets and random keys;
observers (:mod:`hts_mlff.engine.observers`) reduce every sample; its output is a
:class:`PackResult` of numpy arrays keyed by quantity name. A checkpoint (the full integrator
state: positions, velocities, cells, step, guard and observer buffers; the random
generator is counter-based, so the step is its state) can be taken at any step and the
run resumed from it bit-identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.allocator import keep_freed_memory
from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.guard import GuardLimits, StabilityGuard
from hts_mlff.engine.integrators import Dynamics
from hts_mlff.engine.kernels import kernels_enabled, threads_to_kernels
from hts_mlff.engine.neighbors import NeighborList, list_range_A
from hts_mlff.engine.observers import Observer, ThermoObserver
from hts_mlff.engine.refill import Refill, SlotBook, refill_problem, start_interval
from hts_mlff.engine.rng import ReplicaRandom, Stream
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU, BOLTZMANN_EV_PER_K


@dataclass
class MDProtocol:
    """What to run. Equilibration uses ``equilibration_ensemble``: by default Langevin NVT (NPT
    when ``ensemble`` is ``npt``); ``npt`` before an ``nve``/``nvt`` production equilibrates the
    cell at the target pressure first, and production keeps the cell it ends with."""

    timestep_fs: float
    production_steps: int
    sample_every_steps: int
    ensemble: str = "nvt"
    equilibration_ensemble: str | None = None
    equilibration_steps: int = 0
    friction_per_fs: float = 0.01
    barostat_time_constant_fs: float = 2000.0
    compressibility_per_bar: float = 5e-5
    #: "xyz": isotropic barostat; "z": only the z length follows P_zz (NP_zT).
    barostat_axes: str = "xyz"
    #: Two-phase preparation: for the first ``melt_steps`` steps the atoms at fractional
    #: z ≥ 1 − ``melt_fraction`` are thermostatted at ``melt_temperature_K``, the rest at the
    #: replica's target (NVT); a fraction of 1 melts the whole cell.
    melt_temperature_K: float | None = None
    melt_steps: int = 0
    melt_fraction: float = 0.5
    #: Temperature of the initial Maxwell–Boltzmann velocities (None: each replica's target).
    initial_temperature_K: float | None = None
    #: Thermostat target ramps linearly from the replica's temperature to this over production.
    final_temperature_K: float | None = None
    skin_A: float = 1.0
    guard: GuardLimits = field(default_factory=GuardLimits)
    guard_every_steps: int = 0  # 0: at every sample

    @property
    def total_steps(self) -> int:
        return self.equilibration_steps + self.production_steps

    @property
    def n_frames(self) -> int:
        return self.production_steps // self.sample_every_steps + 1

    @property
    def sample_times_fs(self) -> np.ndarray:
        """(n_frames,) times of the samples since production start (fs); the store's ``time_fs``."""
        return np.arange(self.n_frames) * (self.timestep_fs * self.sample_every_steps)


@dataclass
class PackResult:
    """What a pack produced.

    Attributes:
        arrays: quantity name → (n_systems, …) numpy array: every observer's results plus the
            pack's own ``n_atoms``, ``atomic_numbers`` (padded with 0), ``failure_step``,
            ``failure_reason``, ``final_positions`` (padded with NaN, Å) and ``final_cell`` (Å).
            The names are those of the store's table of quantities.
        time_fs: (n_frames,) sample times since production start.
        atom_steps, wall_s, n_neighbor_builds: what it cost.
    """

    arrays: dict[str, np.ndarray]
    time_fs: np.ndarray
    atom_steps: int
    wall_s: float
    n_neighbor_builds: int

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]


@dataclass
class RunHooks:
    """Resume and progress around :func:`run_md` (all optional).

    Attributes:
        resume_from: a dict produced by ``on_checkpoint`` earlier: continue from it.
        checkpoint_every_steps: call ``on_checkpoint`` this often (0: never).
        on_checkpoint: receives the full integrator state (positions, velocities, cells, step,
            guard and observer buffers; the random generator is counter-based, so the step is its state).
        on_progress: called with the number of steps done since the last call.
    """

    resume_from: dict[str, Any] | None = None
    checkpoint_every_steps: int = 0
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None
    on_progress: Callable[[int], None] | None = None


def maxwell_boltzmann_velocities(
    state: BatchState, random: ReplicaRandom, *, temperature_K: torch.Tensor, step: int = 0
) -> None:
    """Draw velocities at per-replica temperatures (n_systems,) K; zero total momentum. The draw
    is each replica's own step 0 (``step``: the pack step a refilled replica starts at)."""
    es = state.system_idx.repeat_interleave(3)
    el = (3 * state.local_atom_index()[:, None] + torch.arange(3, device=state.device)).reshape(-1)
    xi = random.normal(Stream.INITIAL_VELOCITIES, step, element_system=es, element_local=el, dtype=state.dtype)
    kt_over_m = BOLTZMANN_EV_PER_K * temperature_K[state.system_idx] / state.masses * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
    v = xi.view(-1, 3) * torch.sqrt(kt_over_m)[:, None]
    momentum = sum_per_system(v * state.masses[:, None], state.system_idx, state.n_systems)
    mass = sum_per_system(state.masses, state.system_idx, state.n_systems)
    state.velocities = v - (momentum / mass[:, None])[state.system_idx]


def run_md(
    state: BatchState,
    forcefield: ForceField,
    *,
    protocol: MDProtocol,
    temperature_K: torch.Tensor,
    pressure_bar: torch.Tensor,
    keys: list[int],
    observers: Sequence[Observer] = (),
    hooks: RunHooks | None = None,
    refill: Refill | None = None,
) -> PackResult:
    """Integrate every replica of ``state`` through equilibration and production.

    Args:
        state: the pack (modified in place).
        forcefield: force field implementing the engine contract.
        protocol: timestep, steps, ensemble, sampling and guard settings.
        temperature_K: (n_systems,) target temperatures.
        pressure_bar: (n_systems,) target pressures (used when the ensemble is NPT).
        keys: per-replica 64-bit random keys.
        observers: reductions at every sample (default: thermodynamics only).
        hooks: checkpoint, resume and progress callbacks.
        refill: more tasks than replicas (:mod:`hts_mlff.engine.refill`): ``state`` holds the
            first ones, a slot that finishes or fails takes the next; the result then has one
            row per task. The targets and keys above are those of the first ``n_systems`` tasks.
    """
    compiled_on_cpu = forcefield.uses_neighbor_rows and kernels_enabled(state.device) and state.device.type == "cpu"
    # on a CPU the kernels' spans take the threads and torch's own operations run on one
    with threads_to_kernels() if compiled_on_cpu else nullcontext():
        return _run_md(
            state,
            forcefield,
            protocol=protocol,
            temperature_K=temperature_K,
            pressure_bar=pressure_bar,
            keys=keys,
            observers=observers,
            hooks=hooks,
            refill=refill,
        )


def _run_md(
    state: BatchState,
    forcefield: ForceField,
    *,
    protocol: MDProtocol,
    temperature_K: torch.Tensor,
    pressure_bar: torch.Tensor,
    keys: list[int],
    observers: Sequence[Observer] = (),
    hooks: RunHooks | None = None,
    refill: Refill | None = None,
) -> PackResult:
    keep_freed_memory()
    started = time.perf_counter()
    hooks = hooks or RunHooks()
    observers = list(observers) or [ThermoObserver()]
    dev, dtype = state.device, state.dtype
    random = ReplicaRandom(keys, device=dev)
    targets_t = temperature_K.to(device=dev, dtype=dtype).clone()  # a refilled slot changes its own
    list_range = list_range_A(forcefield.cutoff_A, min_pair_distance_A=protocol.guard.min_pair_distance_A)
    # The compiled builders make the list of every force field where they run (a GNN reads it as
    # the canonical half pair list derived from the rows: the same pairs in the same order as the
    # torch list, so the same bits, and no CPU round trip on a GPU).
    rows = kernels_enabled(dev)
    # CPU: half rows (each pair once, both ends written by one serial launch per span of whole
    # systems); GPU: full rows, one thread per atom. The layout depends on the device only, so a
    # trajectory's bits do not depend on its pack or on the number of threads.
    neighbor_list = NeighborList(list_range, skin_A=protocol.skin_A, rows=rows, half_rows=dev.type == "cpu")
    dynamics = Dynamics(
        forcefield,
        neighbor_list=neighbor_list,
        random=random,
        timestep_fs=protocol.timestep_fs,
        temperature_K=targets_t,
        pressure_bar=pressure_bar.to(device=dev, dtype=dtype).clone(),
        friction_per_fs=protocol.friction_per_fs,
        barostat_time_constant_fs=protocol.barostat_time_constant_fs,
        compressibility_per_bar=protocol.compressibility_per_bar,
        barostat_axes=protocol.barostat_axes,
    )
    for observer in observers:
        observer.attach(forcefield)
        observer.start(state, n_frames=protocol.n_frames)
        observer.note_fills()
    book = None
    if refill is not None:
        problem = refill_problem(protocol, observers)
        if problem is not None:
            raise ValueError(f"this pack cannot refill its slots: {problem}")
        book = SlotBook(state.n_systems, refill.n_tasks, total_steps=protocol.total_steps)
    guard, start_step = _begin(
        state,
        random,
        protocol=protocol,
        temperature_K=targets_t,
        observers=observers,
        resume_from=hooks.resume_from,
        book=book,
    )
    if book is not None and hooks.resume_from is not None:
        for slot, task in enumerate(book.task.tolist()):
            if task >= state.n_systems:  # a refilled slot: its task's key, targets and start
                random.assign(slot, key=refill.keys[task], start_step=int(book.start_step[slot]))
                targets_t[slot] = refill.temperature_K[task]
                dynamics.pressure_bar[slot] = refill.pressure_bar[task]
    dynamics.set_active(guard.active)

    equil, sample_every = protocol.equilibration_steps, protocol.sample_every_steps
    equilibration_ensemble = protocol.equilibration_ensemble or ("npt" if protocol.ensemble == "npt" else "nvt")
    guard_every = protocol.guard_every_steps or sample_every
    offsets = state.system_offsets().tolist()

    def is_sample(step: int) -> bool:
        return step >= equil and (step - equil) % sample_every == 0

    def check(output: ForceOutput, step: int, replicas: np.ndarray | None = None) -> None:
        """Guard and observers at pack step ``step``; with a refill, per slot at its own step
        (``replicas``: only these slots, e.g. those starting now)."""
        if book is None:
            guard.check(state, output, step=step, timestep_fs=protocol.timestep_fs)
            frame: int | np.ndarray = (step - equil) // sample_every
            sampling = is_sample(step)
        else:
            own = book.own_steps(step)
            samples = (book.task >= 0) & (own >= equil) & ((own - equil) % sample_every == 0)
            checks = (book.task >= 0) & ((own % guard_every == 0) | samples)
            if replicas is not None:
                samples, checks = samples & replicas, checks & replicas
            if not checks.any():
                return
            mask = torch.as_tensor(checks, device=dev)
            guard.check(state, output, step=step, timestep_fs=protocol.timestep_fs, replicas=mask)
            frame = np.where(samples, (own - equil) // sample_every, -1)
            sampling = bool(samples.any())
        dynamics.set_active(guard.active)
        if sampling:
            alive = guard.active.cpu().numpy()
            for observer in observers:
                observer.record(state, output, frame=frame, alive=alive)

    def harvest(step: int, *, checked: bool) -> None:
        """Keep the tasks of slots that finished at ``step`` or have failed (only a check freezes a
        slot: ``checked``); retire their slots."""
        ended = book.finishing(step)
        if checked:  # one device-to-host copy at check steps only
            ended = ended | ((book.task >= 0) & (guard.failure_step.cpu().numpy() >= 0))
        slots = np.flatnonzero(ended).tolist()
        if not slots:
            return
        pack = _pack_arrays(state, guard)
        per_observer = [o.results(time_fs=protocol.sample_times_fs) for o in observers]
        for slot in slots:
            start = int(book.start_step[slot])
            arrays = {name: value[slot] for name, value in pack.items()}
            if arrays["failure_step"] >= 0:
                arrays["failure_step"] = arrays["failure_step"] - start
            for results in per_observer:
                arrays.update({name: value[slot] for name, value in results.items()})
            steps_run = int(arrays["failure_step"]) if arrays["failure_step"] >= 0 else step - start
            book.harvest(slot, arrays, steps_run=steps_run)
            guard.retire(slot)
        dynamics.set_active(guard.active)

    def start_tasks(step: int) -> bool:
        """Idle slots take the pending tasks from ``step``; True when any did."""
        started_now = np.zeros(state.n_systems, dtype=bool)
        positions, cell = state.positions.detach().clone(), state.cell.detach().clone()
        for slot in np.flatnonzero(book.task < 0).tolist():
            task = book.assign(slot, step=step)
            if task is None:
                break
            begin = refill.load(task)
            positions[offsets[slot] : offsets[slot + 1]] = begin.positions_A.to(device=dev, dtype=dtype)
            cell[slot] = begin.cell_A.to(device=dev, dtype=dtype)
            random.assign(slot, key=refill.keys[task], start_step=step)
            targets_t[slot] = refill.temperature_K[task]
            dynamics.pressure_bar[slot] = refill.pressure_bar[task]
            started_now[slot] = True
        if not started_now.any():
            return False
        state.positions, state.cell = positions, cell
        # one draw at this step is every starting task's own step 0; the other slots keep theirs
        running_velocities = state.velocities
        t0 = targets_t
        if protocol.initial_temperature_K is not None:
            t0 = torch.full_like(targets_t, protocol.initial_temperature_K)
        maxwell_boltzmann_velocities(state, random, temperature_K=t0, step=step)
        starting = torch.as_tensor(started_now, device=dev)[state.system_idx][:, None]
        state.velocities = torch.where(starting, state.velocities, running_velocities)
        for slot in np.flatnonzero(started_now).tolist():
            atoms = slice(offsets[slot], offsets[slot + 1])
            guard.restart(slot, state, atoms=atoms)
            neighbor_list.invalidate(slot, atoms=atoms)
            for observer in observers:
                observer.reset_replica(slot, atoms=atoms)
        dynamics.set_active(guard.active)
        dynamics.compute_forces(state, compute_stress=True)
        if is_sample(0):  # as a pack's own start: the first sample before the first step
            check(dynamics.output, step, replicas=started_now)
        return True

    output = dynamics.compute_forces(state, compute_stress=True)
    interval = start_interval(protocol) if book is not None else 0

    def refill_slots(step: int, *, checked: bool) -> bool:
        """Harvest what ended at ``step``; at a start step, idle slots take pending tasks (again
        while a task fails at its own first check). True when the forces were recomputed."""
        recomputed = False
        while True:
            harvest(step, checked=checked)
            checked = True  # the tasks that started were checked at their own step 0
            if step % interval or not (book.task < 0).any() or not start_tasks(step):
                return recomputed
            recomputed = True

    if start_step == 0 and is_sample(0):
        check(output, 0)
        if book is not None and refill_slots(0, checked=True):
            output = dynamics.output
    pending = 0
    step = start_step
    while (step < protocol.total_steps) if book is None else not book.all_done:
        if protocol.final_temperature_K is not None and step >= equil:
            fraction = (step - equil) / max(protocol.production_steps, 1)
            dynamics.temperature_K = targets_t + (protocol.final_temperature_K - targets_t) * fraction
        ensemble = protocol.ensemble if step >= equil else equilibration_ensemble
        if step < protocol.melt_steps:  # two-phase preparation: the upper half melts
            ensemble = "nvt"
            dynamics.atom_temperature_K = melt_half_temperatures(
                state, targets_t, protocol.melt_temperature_K, fraction=protocol.melt_fraction
            )
        elif dynamics.atom_temperature_K is not None:
            dynamics.atom_temperature_K = None
        after = step + 1
        output = dynamics.step(state, step=step, ensemble=ensemble, compute_stress=is_sample(after))
        checked = is_sample(after) or after % guard_every == 0
        if checked:
            check(output, after)
        if book is not None and refill_slots(after, checked=checked):
            output = dynamics.output
        step = after
        pending += 1
        if hooks.on_progress is not None and pending >= sample_every:
            hooks.on_progress(pending)
            pending = 0
        every = hooks.checkpoint_every_steps
        running = after < protocol.total_steps if book is None else not book.all_done
        if hooks.on_checkpoint is not None and every > 0 and after % every == 0 and running:
            hooks.on_checkpoint(_checkpoint(state, guard, observers, step=after, book=book))
    if hooks.on_progress is not None and pending:
        hooks.on_progress(pending)

    if book is None:
        arrays = _pack_arrays(state, guard)
        for observer in observers:
            arrays.update(observer.results(time_fs=protocol.sample_times_fs))
        atom_steps = state.n_atoms * (protocol.total_steps - start_step)
    else:
        arrays = book.results
        atom_steps = int(state.n_atoms // state.n_systems * book.steps_run.sum())
    return PackResult(
        arrays=arrays,
        time_fs=protocol.sample_times_fs,
        atom_steps=atom_steps,
        wall_s=time.perf_counter() - started,
        n_neighbor_builds=neighbor_list.n_builds,
    )


def melt_half_temperatures(
    state: BatchState, target_K: torch.Tensor, melt_K: float | None, *, fraction: float = 0.5
) -> torch.Tensor:
    """(n_atoms,) thermostat targets of the two-phase preparation: ``melt_K`` for atoms at
    fractional z ≥ 1 − ``fraction`` (wrapped into the cell), the replica's target below. Depends
    only on the current state, so a resumed preparation continues exactly."""
    inverse = torch.linalg.inv(state.cell)[state.system_idx]  # (n_atoms, 3, 3)
    fractional_z = torch.einsum("ak,akj->aj", state.positions, inverse)[:, 2]
    upper = (fractional_z - torch.floor(fractional_z)) >= 1.0 - fraction
    below = target_K[state.system_idx]
    return torch.where(upper, torch.full_like(below, float(melt_K)), below)


def _begin(
    state: BatchState,
    random: ReplicaRandom,
    *,
    protocol: MDProtocol,
    temperature_K: torch.Tensor,
    observers: list[Observer],
    resume_from: dict[str, Any] | None,
    book: SlotBook | None = None,
) -> tuple[StabilityGuard, int]:
    """Draw the initial velocities (at the protocol's initial temperature, else each replica's
    target), or restore a checkpoint; returns the guard and the first step."""
    dev, dtype = state.device, state.dtype
    if resume_from is None:
        t0 = temperature_K
        if protocol.initial_temperature_K is not None:
            t0 = torch.full_like(temperature_K, protocol.initial_temperature_K)
        maxwell_boltzmann_velocities(state, random, temperature_K=t0)
        return StabilityGuard(state, limits=protocol.guard), 0
    state.positions = resume_from["positions"].to(device=dev, dtype=dtype)
    state.velocities = resume_from["velocities"].to(device=dev, dtype=dtype)
    state.cell = resume_from["cell"].to(device=dev, dtype=dtype)
    guard = StabilityGuard(state, limits=protocol.guard)
    guard.load_state_dict(resume_from["guard"], device=dev)
    for k, observer in enumerate(observers):
        observer.load_state_dict({n: v.numpy() for n, v in resume_from["observers"][k].items()})
    if book is not None:
        if "slots" not in resume_from:
            raise ValueError("the checkpoint is not one of a refilling pack")
        book.load_state_dict(resume_from["slots"])
    return guard, int(resume_from["step"])


def _checkpoint(
    state: BatchState, guard: StabilityGuard, observers: list[Observer], *, step: int, book: SlotBook | None = None
) -> dict[str, Any]:
    extra = {} if book is None else {"slots": book.state_dict()}
    return {
        **extra,
        "step": step,
        "positions": state.positions.detach().cpu().clone(),
        "velocities": state.velocities.detach().cpu().clone(),
        "cell": state.cell.detach().cpu().clone(),
        "guard": guard.state_dict(),
        "observers": [{k: torch.from_numpy(v.copy()) for k, v in o.state_dict().items()} for o in observers],
    }


def _pack_arrays(state: BatchState, guard: StabilityGuard) -> dict[str, np.ndarray]:
    """The pack's own per-replica arrays, padded to the largest replica (see :class:`PackResult`)."""
    counts = state.atoms_per_system.cpu().numpy()
    n, max_atoms = state.n_systems, int(counts.max())
    rows, columns = state.system_idx.cpu().numpy(), state.local_atom_index().cpu().numpy()
    atomic_numbers = np.zeros((n, max_atoms), dtype=np.int32)
    atomic_numbers[rows, columns] = state.atomic_numbers.cpu().numpy()
    final_positions = np.full((n, max_atoms, 3), np.nan)
    final_positions[rows, columns] = state.positions.detach().cpu().double().numpy()
    return {
        "n_atoms": counts.astype(np.int32),
        "atomic_numbers": atomic_numbers,
        "failure_step": guard.failure_step.cpu().numpy().astype(np.int64),
        "failure_reason": guard.failure_reason.cpu().numpy().astype(np.int8),
        "final_positions": final_positions,
        "final_cell": state.cell.detach().cpu().double().numpy(),
    }

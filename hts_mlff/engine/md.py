"""Run one pack: equilibration then production MD of many replicas in one batched loop.

This is the engine's entry point; it knows nothing of Dask, Zarr or campaign files. Its
inputs are a state, a force field, a protocol and per-replica targets and random keys;
observers (:mod:`hts_mlff.engine.observers`) reduce every sample; its output is a
:class:`PackResult` of numpy arrays keyed by quantity name. A checkpoint (the full integrator
state: positions, velocities, cells, step, guard and observer buffers; the random
generator is counter-based, so the step is its state) can be taken at any step and the
run resumed from it bit-identically.

The pieces: :class:`~hts_mlff.engine.pack_run.PackRun` (state, propagator, guard, observers),
:class:`~hts_mlff.engine.schedule.Schedule` (each step's ensemble and targets),
:mod:`hts_mlff.engine.ensembles` (one ``init``/``step`` per ensemble); this module's loop is the
driver of a pack whose replicas all start together, :mod:`hts_mlff.engine.refill` the driver of
one whose slots take new tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.guard import GuardLimits
from hts_mlff.engine.kernels import kernel_threads_for_pack, kernels_enabled
from hts_mlff.engine.observers import Observer
from hts_mlff.engine.pack_run import PackRun, Progress, maxwell_boltzmann_velocities
from hts_mlff.engine.refill import Refill, drive_refilling
from hts_mlff.engine.state import BatchState

__all__ = ["MDProtocol", "PackResult", "RunHooks", "maxwell_boltzmann_velocities", "run_md"]


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
    threads: int | None = None,
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
        threads: CPU threads of this pack's compiled kernels (default: torch's count).
    """
    hooks = hooks or RunHooks()
    compiled_on_cpu = (
        forcefield.neighbor_layout == "rows" and kernels_enabled(state.device) and state.device.type == "cpu"
    )
    one_thread = forcefield.single_threaded_on_cpu and state.device.type == "cpu"
    # on a CPU the kernels' spans take the threads and torch's own operations run on one
    with kernel_threads_for_pack(threads) if compiled_on_cpu or one_thread else nullcontext():
        run = PackRun(
            state,
            forcefield,
            protocol=protocol,
            temperature_K=temperature_K,
            pressure_bar=pressure_bar,
            keys=keys,
            observers=observers,
        )
        if refill is not None:
            arrays, atom_steps = drive_refilling(run, refill, hooks=hooks)
        else:
            arrays, atom_steps = _drive(run, hooks)
    return PackResult(
        arrays=arrays,
        time_fs=protocol.sample_times_fs,
        atom_steps=atom_steps,
        wall_s=time.perf_counter() - run.started,
        n_neighbor_builds=run.neighbors.n_builds,
    )


def _drive(run: PackRun, hooks: RunHooks) -> tuple[dict[str, np.ndarray], int]:
    """Every replica from step 0 (or the checkpoint's step) to the protocol's last."""
    protocol, md = run.protocol, run.md
    run.begin(hooks.resume_from)
    start = md.step
    run.propagator.forces(md, stress=True)
    if start == 0 and run.is_sample(0):
        run.check(0, frame=0, sampling=True)
    progress = Progress(hooks.on_progress, every=protocol.sample_every_steps)
    every = hooks.checkpoint_every_steps
    while md.step < protocol.total_steps:
        step = run.advance()
        if run.is_check(step):
            frame = (step - protocol.equilibration_steps) // protocol.sample_every_steps
            run.check(step, frame=frame, sampling=run.is_sample(step))
        progress.tick()
        if hooks.on_checkpoint is not None and every > 0 and step % every == 0 and step < protocol.total_steps:
            hooks.on_checkpoint(run.checkpoint())
    progress.flush()
    arrays = run.pack_arrays()
    for results in run.observer_results():
        arrays.update(results)
    return arrays, md.system.n_atoms * (protocol.total_steps - start)

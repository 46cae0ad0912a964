"""One pack in motion: its MD state, propagator, schedule, guard and observers, and the steps
both drivers share (start or resume, one step, the checks of a step, a checkpoint, the results).

The drivers — :func:`hts_mlff.engine.md.run_md` for a pack whose replicas all start at step 0,
:func:`hts_mlff.engine.refill.drive_refilling` for one whose slots take new tasks — are short
loops over these.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.allocator import keep_freed_memory
from hts_mlff.engine.ensembles import Ensemble
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.guard import StabilityGuard
from hts_mlff.engine.integrators import Propagator
from hts_mlff.engine.md_state import MDState
from hts_mlff.engine.neighbors import neighbor_list_for
from hts_mlff.engine.observers import Observer, ThermoObserver
from hts_mlff.engine.rng import ReplicaRandom, Stream
from hts_mlff.engine.schedule import Schedule
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU, BOLTZMANN_EV_PER_K


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


class PackRun:
    """Everything one pack's loop works with (see the module doc).

    Args:
        state: the pack (modified in place).
        forcefield: force field implementing the engine contract.
        protocol: an :class:`~hts_mlff.engine.md.MDProtocol`.
        temperature_K, pressure_bar: (n_systems,) each replica's targets.
        keys: per-replica 64-bit random keys.
        observers: reductions at every sample (default: thermodynamics only).
    """

    def __init__(
        self,
        state: BatchState,
        forcefield: ForceField,
        *,
        protocol: Any,
        temperature_K: torch.Tensor,
        pressure_bar: torch.Tensor,
        keys: list[int],
        observers: Sequence[Observer] = (),
    ) -> None:
        keep_freed_memory()
        self.started = time.perf_counter()
        self.protocol = protocol
        self.observers = list(observers) or [ThermoObserver()]
        dev, dtype = state.device, state.dtype
        self.random = ReplicaRandom(keys, device=dev)
        self.neighbors = neighbor_list_for(
            forcefield, dev, skin_A=protocol.skin_A, min_pair_distance_A=protocol.guard.min_pair_distance_A
        )
        self.md = MDState(
            system=state,
            temperature_K=temperature_K.to(device=dev, dtype=dtype).clone(),
            pressure_bar=pressure_bar.to(device=dev, dtype=dtype).clone(),
            active=torch.ones(state.n_systems, dtype=torch.bool, device=dev),
        )
        self.propagator = Propagator(
            forcefield,
            neighbors=self.neighbors,
            random=self.random,
            timestep_fs=protocol.timestep_fs,
            friction_per_fs=protocol.friction_per_fs,
            barostat_time_constant_fs=protocol.barostat_time_constant_fs,
            compressibility_per_bar=protocol.compressibility_per_bar,
        )
        self.schedule = Schedule.from_protocol(protocol)
        self.guard = StabilityGuard(state, limits=protocol.guard)
        self.ensemble: Ensemble | None = None
        self.guard_every = protocol.guard_every_steps or protocol.sample_every_steps
        for observer in self.observers:
            observer.attach(forcefield, neighbors=self.neighbors)
            observer.start(state, n_frames=protocol.n_frames)
            observer.note_fills()

    # ------------------------------------------------------------------ start
    def begin(self, resume_from: dict[str, Any] | None) -> dict[str, Any] | None:
        """Draw the initial velocities (at the protocol's initial temperature, else each replica's
        target), or restore a checkpoint (returned, for the driver's own part of it)."""
        md, state = self.md, self.md.system
        dev, dtype = state.device, state.dtype
        if resume_from is None:
            maxwell_boltzmann_velocities(state, self.random, temperature_K=self.initial_temperatures())
            self.set_active()
            return None
        state.positions = resume_from["positions"].to(device=dev, dtype=dtype)
        state.velocities = resume_from["velocities"].to(device=dev, dtype=dtype)
        state.cell = resume_from["cell"].to(device=dev, dtype=dtype)
        self.guard = StabilityGuard(state, limits=self.protocol.guard)
        self.guard.load_state_dict(resume_from["guard"], device=dev)
        for k, observer in enumerate(self.observers):
            observer.load_state_dict({n: v.numpy() for n, v in resume_from["observers"][k].items()})
        md.step = int(resume_from["step"])
        self.set_active()
        return resume_from

    def initial_temperatures(self) -> torch.Tensor:
        """(n_systems,) temperatures of the initial velocities."""
        if self.protocol.initial_temperature_K is not None:
            return torch.full_like(self.md.temperature_K, self.protocol.initial_temperature_K)
        return self.md.temperature_K

    def set_active(self) -> None:
        """The guard's mask is the integrated set (frozen rows are neither rebuilt nor walked)."""
        self.md.active = self.guard.active
        self.neighbors.set_active(self.md.active)

    # ------------------------------------------------------------------ steps
    def is_sample(self, step: int) -> bool:
        equil = self.protocol.equilibration_steps
        return step >= equil and (step - equil) % self.protocol.sample_every_steps == 0

    def is_check(self, step: int) -> bool:
        return self.is_sample(step) or step % self.guard_every == 0

    def advance(self) -> int:
        """One step from ``md.step`` in the schedule's ensemble and targets (the stress where the
        next step is a sample); returns the new step."""
        md = self.md
        targets = self.schedule.at(md)
        if targets.ensemble is not self.ensemble:
            targets.ensemble.init(md, self.propagator)
            self.ensemble = targets.ensemble
        targets.ensemble.step(md, self.propagator, targets, stress=self.is_sample(md.step + 1))
        md.step += 1
        return md.step

    def check(
        self, step: int, *, frame: int | np.ndarray, sampling: bool, replicas: torch.Tensor | None = None
    ) -> None:
        """Guard (of ``replicas``, (n_systems,) bool, when given) and, at a sample, observers."""
        md = self.md
        self.guard.check(
            md.system,
            md.output,
            step=step,
            timestep_fs=self.protocol.timestep_fs,
            neighbors=self.neighbors,
            replicas=replicas,
        )
        self.set_active()
        if sampling:
            alive = self.guard.active.cpu().numpy()
            for observer in self.observers:
                observer.record(md.system, md.output, frame=frame, alive=alive)

    # ------------------------------------------------------------------ out
    def checkpoint(self, **extra: Any) -> dict[str, Any]:
        """The full integrator state at ``md.step`` (the random generator is counter-based, so
        the step is its state), plus the driver's ``extra``."""
        state = self.md.system
        return {
            **extra,
            "step": self.md.step,
            "positions": state.positions.detach().cpu().clone(),
            "velocities": state.velocities.detach().cpu().clone(),
            "cell": state.cell.detach().cpu().clone(),
            "guard": self.guard.state_dict(),
            "observers": [{k: torch.from_numpy(v.copy()) for k, v in o.state_dict().items()} for o in self.observers],
        }

    def pack_arrays(self) -> dict[str, np.ndarray]:
        """The pack's own per-replica arrays, padded to the largest replica (see
        :class:`~hts_mlff.engine.md.PackResult`)."""
        state, guard = self.md.system, self.guard
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

    def observer_results(self) -> list[dict[str, np.ndarray]]:
        return [o.results(time_fs=self.protocol.sample_times_fs) for o in self.observers]


class Progress:
    """Calls ``on_progress`` with the steps done, once per ``every`` steps and at the end."""

    def __init__(self, on_progress: Any, *, every: int) -> None:
        self.on_progress, self.every, self.pending = on_progress, every, 0

    def tick(self) -> None:
        self.pending += 1
        if self.on_progress is not None and self.pending >= self.every:
            self.on_progress(self.pending)
            self.pending = 0

    def flush(self) -> None:
        if self.on_progress is not None and self.pending:
            self.on_progress(self.pending)
            self.pending = 0

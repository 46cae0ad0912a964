"""Run one pack: equilibration then production MD of many replicas in one batched loop.

This is the engine's entry point; it knows nothing of Dask, Zarr or campaign files. Its
inputs are a state, a force field, a protocol and per-replica targets and random keys;
its output is a :class:`PackResult` of numpy arrays. A checkpoint (the full integrator
state: positions, velocities, cells, step, guard and recorder buffers; the random
generator is counter-based, so the step is its state) can be taken at any step and the
run resumed from it bit-identically.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.allocator import keep_freed_memory
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.guard import GuardLimits, StabilityGuard
from hts_mlff.engine.integrators import Dynamics
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.observers import Recorder
from hts_mlff.engine.rng import ReplicaRandom, Stream
from hts_mlff.engine.state import BatchState, sum_per_system
from hts_mlff.engine.wigner_seitz import jump_summary
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU, BOLTZMANN_EV_PER_K


@dataclass
class MDProtocol:
    """What to run. Equilibration uses Langevin NVT (NPT when ``ensemble`` is ``npt``)."""

    timestep_fs: float
    production_steps: int
    sample_every_steps: int
    ensemble: str = "nvt"
    equilibration_steps: int = 0
    friction_per_fs: float = 0.01
    barostat_time_constant_fs: float = 2000.0
    compressibility_per_bar: float = 5e-5
    positions_every_samples: int = 0
    velocities_every_samples: int = 0
    forces_every_samples: int = 0
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


@dataclass
class PackResult:
    """Per-replica results of a pack (numpy; shapes in :class:`Recorder`)."""

    time_fs: np.ndarray
    thermo: dict[str, np.ndarray]
    positions: np.ndarray | None
    velocities: np.ndarray | None
    forces: np.ndarray | None
    cells: np.ndarray | None
    atomic_numbers: np.ndarray
    vacancy_site: np.ndarray | None
    n_vacant: np.ndarray | None
    #: (n_systems,) jumps of the vacancy and time of the first (NaN: none), when tracked.
    vacancy_jumps: np.ndarray | None
    first_vacancy_jump_fs: np.ndarray | None
    n_atoms: np.ndarray
    failure_step: np.ndarray
    failure_reason: np.ndarray
    final_positions: list[np.ndarray]
    final_cell: np.ndarray
    atom_steps: int
    wall_s: float
    n_neighbor_builds: int


def maxwell_boltzmann_velocities(state: BatchState, random: ReplicaRandom, *, temperature_K: torch.Tensor) -> None:
    """Draw velocities at per-replica temperatures (n_systems,) K; zero total momentum."""
    es = state.system_idx.repeat_interleave(3)
    el = (3 * state.local_atom_index()[:, None] + torch.arange(3, device=state.device)).reshape(-1)
    xi = random.normal(Stream.INITIAL_VELOCITIES, 0, element_system=es, element_local=el, dtype=state.dtype).view(-1, 3)
    kt_over_m = BOLTZMANN_EV_PER_K * temperature_K[state.system_idx] / state.masses * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
    v = xi * torch.sqrt(kt_over_m)[:, None]
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
    initial_temperature_K: torch.Tensor | None = None,
    checkpoint: dict[str, Any] | None = None,
    checkpoint_every_steps: int = 0,
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    vacancy_sites: list[torch.Tensor | None] | None = None,
) -> PackResult:
    """Integrate every replica of ``state`` through equilibration and production.

    Args:
        state: the pack (modified in place).
        forcefield: force field implementing the engine contract.
        protocol: timestep, steps, ensemble, sampling and guard settings.
        temperature_K: (n_systems,) target temperatures.
        pressure_bar: (n_systems,) target pressures (used when the ensemble is NPT).
        keys: per-replica 64-bit random keys.
        initial_temperature_K: (n_systems,) temperatures of the initial Maxwell–Boltzmann
            velocities (default: the targets).
        checkpoint: a dict produced by ``on_checkpoint`` earlier: resume from it.
        checkpoint_every_steps: call ``on_checkpoint`` this often (0: never).
        on_progress: called with the number of steps done since the last call.
        vacancy_sites: per replica, (m, 3) reference lattice sites in fractional coordinates
            for Wigner–Seitz vacancy tracking at every sample (None: not tracked).
    """
    keep_freed_memory()
    started = time.perf_counter()
    dev, dtype = state.device, state.dtype
    random = ReplicaRandom(keys, device=dev)
    targets_t = temperature_K.to(device=dev, dtype=dtype)
    targets_p = pressure_bar.to(device=dev, dtype=dtype)
    neighbor_list = NeighborList(forcefield.cutoff_A, skin_A=protocol.skin_A)
    dynamics = Dynamics(
        forcefield,
        neighbor_list=neighbor_list,
        random=random,
        timestep_fs=protocol.timestep_fs,
        temperature_K=targets_t,
        pressure_bar=targets_p,
        friction_per_fs=protocol.friction_per_fs,
        barostat_time_constant_fs=protocol.barostat_time_constant_fs,
        compressibility_per_bar=protocol.compressibility_per_bar,
    )
    recorder = Recorder(
        state,
        n_frames=protocol.n_frames,
        positions_every_samples=protocol.positions_every_samples,
        velocities_every_samples=protocol.velocities_every_samples,
        forces_every_samples=protocol.forces_every_samples,
        vacancy_sites=vacancy_sites,
    )
    start_step = 0
    if checkpoint is None:
        t0 = targets_t if initial_temperature_K is None else initial_temperature_K.to(device=dev, dtype=dtype)
        maxwell_boltzmann_velocities(state, random, temperature_K=t0)
        guard = StabilityGuard(state, limits=protocol.guard)
    else:
        start_step = int(checkpoint["step"])
        state.positions = checkpoint["positions"].to(device=dev, dtype=dtype)
        state.velocities = checkpoint["velocities"].to(device=dev, dtype=dtype)
        state.cell = checkpoint["cell"].to(device=dev, dtype=dtype)
        guard = StabilityGuard(state, limits=protocol.guard)
        guard.load_state_dict(checkpoint["guard"], device=dev)
        recorder.load_state_dict(checkpoint["recorder"])
    dynamics.set_active(guard.active)

    equil, sample_every = protocol.equilibration_steps, protocol.sample_every_steps
    guard_every = protocol.guard_every_steps or sample_every

    def is_sample(step: int) -> bool:
        return step >= equil and (step - equil) % sample_every == 0

    output = dynamics.compute_forces(state, compute_stress=True)
    if start_step == 0 and is_sample(0):
        guard.check(state, output, step=0, timestep_fs=protocol.timestep_fs)
        dynamics.set_active(guard.active)
        recorder.record(state, output, frame=0, active=guard.active)
    pending = 0
    ramp_steps = max(protocol.production_steps, 1)
    for step in range(start_step, protocol.total_steps):
        if protocol.final_temperature_K is not None and step >= equil:
            fraction = (step - equil) / ramp_steps
            dynamics.temperature_K = targets_t + (protocol.final_temperature_K - targets_t) * fraction
        ensemble = protocol.ensemble if step >= equil else ("npt" if protocol.ensemble == "npt" else "nvt")
        after = step + 1
        output = dynamics.step(state, step=step, ensemble=ensemble, compute_stress=is_sample(after))
        if is_sample(after) or after % guard_every == 0:
            guard.check(state, output, step=after, timestep_fs=protocol.timestep_fs)
            dynamics.set_active(guard.active)
        if is_sample(after):
            recorder.record(state, output, frame=(after - equil) // sample_every, active=guard.active)
        pending += 1
        if on_progress is not None and pending >= sample_every:
            on_progress(pending)
            pending = 0
        if (
            on_checkpoint is not None
            and checkpoint_every_steps > 0
            and after % checkpoint_every_steps == 0
            and after < protocol.total_steps
        ):
            on_checkpoint(
                {
                    "step": after,
                    "positions": state.positions.detach().cpu().clone(),
                    "velocities": state.velocities.detach().cpu().clone(),
                    "cell": state.cell.detach().cpu().clone(),
                    "guard": guard.state_dict(),
                    "recorder": {k: torch.from_numpy(v.copy()) for k, v in recorder.state_dict().items()},
                }
            )
    if on_progress is not None and pending:
        on_progress(pending)

    offsets = state.system_offsets().tolist()
    positions_np = state.positions.detach().cpu().double().numpy()
    time_fs = np.arange(protocol.n_frames) * sample_every * protocol.timestep_fs
    jumps, first_jump = None, None
    if recorder.vacancy_site is not None:
        jumps, first_frame = jump_summary(recorder.vacancy_site, recorder.n_vacant)
        first_jump = np.where(first_frame >= 0, time_fs[np.maximum(first_frame, 0)], np.nan)
    return PackResult(
        time_fs=time_fs,
        thermo=recorder.thermo,
        positions=recorder.positions,
        velocities=recorder.velocities,
        forces=recorder.forces,
        cells=recorder.cells,
        atomic_numbers=_padded_atomic_numbers(state),
        vacancy_site=recorder.vacancy_site,
        n_vacant=recorder.n_vacant,
        vacancy_jumps=jumps,
        first_vacancy_jump_fs=first_jump,
        n_atoms=state.atoms_per_system.cpu().numpy(),
        failure_step=guard.failure_step.cpu().numpy(),
        failure_reason=guard.failure_reason.cpu().numpy(),
        final_positions=[positions_np[offsets[s] : offsets[s + 1]] for s in range(state.n_systems)],
        final_cell=state.cell.detach().cpu().double().numpy(),
        atom_steps=state.n_atoms * (protocol.total_steps - start_step),
        wall_s=time.perf_counter() - started,
        n_neighbor_builds=neighbor_list.n_builds,
    )


def _padded_atomic_numbers(state: BatchState) -> np.ndarray:
    """(n_systems, max_atoms) int32 atomic numbers, 0 where a replica has fewer atoms."""
    counts = state.atoms_per_system.cpu().numpy()
    out = np.zeros((state.n_systems, int(counts.max())), dtype=np.int32)
    out[state.system_idx.cpu().numpy(), state.local_atom_index().cpu().numpy()] = state.atomic_numbers.cpu().numpy()
    return out

"""Run one pack where a worker stands: build, integrate, write its own store region.

This is the function Dask workers execute. It imports the engine and the store but not
Dask: results go straight from the worker into the store (whole chunks of its own), then
the completion markers are written, last. The coordinator only receives a small summary.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hts_mlff.engine.guard import FailureReason, GuardLimits
from hts_mlff.engine.lattice import fcc_lattice_constant_A, relaxed_fcc
from hts_mlff.engine.md import MDProtocol, run_md
from hts_mlff.engine.minimize import fire_minimize
from hts_mlff.engine.rng import replica_key
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.forcefields.registry import build_forcefield
from hts_mlff.spec.model import Campaign, FccSystem
from hts_mlff.store.layout import CampaignStore
from hts_mlff.systems import build_system, fcc_lattice_A, reference_sites
from hts_mlff.tasks import forcefield_checksum

_FORCEFIELD_CACHE: dict[str, Any] = {}
_LATTICE_CACHE: dict[tuple, float] = {}


@dataclass
class PackJob:
    """Everything a worker needs to run one pack (small and picklable)."""

    campaign_name: str
    spec_json: str
    base_dir: str
    store_path: str
    pack_index: int
    slot_start: int
    tasks: list[dict[str, Any]]
    threads: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU. On CUDA, worker k of a job uses GPU k."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("execution.device is 'cuda' but no CUDA device is available on this worker")
    return torch.device(f"cuda:{_worker_index() % torch.cuda.device_count()}")


def _worker_index() -> int:
    """Index of this worker process inside its job (the trailing number of its name), else 0."""
    try:
        from distributed import get_worker

        match = re.search(r"(\d+)$", str(get_worker().name))
    except (ImportError, ValueError):
        return 0
    return int(match.group(1)) if match else 0


def md_protocol(campaign: Campaign) -> MDProtocol:
    p = campaign.protocol
    return MDProtocol(
        timestep_fs=p.timestep_fs,
        production_steps=p.production_steps,
        sample_every_steps=p.sample_every_steps,
        ensemble=p.ensemble,
        equilibration_steps=p.equilibration_steps,
        friction_per_fs=p.friction_per_fs,
        barostat_time_constant_fs=p.barostat_time_constant_fs,
        compressibility_per_bar=p.compressibility_per_bar,
        positions_every_samples=p.save_positions_every_samples,
        velocities_every_samples=p.save_velocities_every_samples,
        forces_every_samples=p.save_forces_every_samples,
        final_temperature_K=p.final_temperature_K,
        skin_A=p.neighbor_skin_A,
        guard=GuardLimits(
            max_force_eV_per_A=p.guard.max_force_eV_per_A,
            max_step_displacement_A=p.guard.max_step_displacement_A,
            min_pair_distance_A=p.guard.min_pair_distance_A,
        ),
        guard_every_steps=p.guard.check_every_steps,
    )


def vacancy_seed(campaign_name: str, system: str, seed: int, window: int) -> int:
    """Random vacancy sites depend on (campaign, system, seed, window), not on T or P."""
    key = f"{campaign_name}|{system}|{seed}|{window}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def _forcefield(campaign: Campaign, name: str, *, base_dir: Path):
    spec = campaign.forcefields[name]
    key = f"{base_dir}|{forcefield_checksum(spec, base_dir=base_dir)}"
    if key not in _FORCEFIELD_CACHE:
        _FORCEFIELD_CACHE[key] = build_forcefield(spec, base_dir=base_dir)
    return _FORCEFIELD_CACHE[key]


def relaxed_lattice_A(
    campaign: Campaign, system: str, pressure_bar: float, *, base_dir: Path, device: torch.device
) -> float | None:
    """The T = 0 lattice (Å) at ``pressure_bar`` of an FCC system with ``relax_lattice_with``
    (None otherwise), from the named force field; cached per worker."""
    spec = campaign.systems[system]
    if not isinstance(spec, FccSystem) or spec.relax_lattice_with is None:
        return None
    ff_spec = campaign.forcefields[spec.relax_lattice_with]
    key = (
        forcefield_checksum(ff_spec, base_dir=base_dir),
        spec.element,
        spec.repeat,
        fcc_lattice_A(spec),
        pressure_bar,
    )
    if key not in _LATTICE_CACHE:
        forcefield = _forcefield(campaign, spec.relax_lattice_with, base_dir=base_dir)
        crystal = relaxed_fcc(
            forcefield,
            spec.element,
            guess_lattice_A=fcc_lattice_A(spec),
            repeat=spec.repeat,
            pressure_bar=pressure_bar,
            device=device,
        )
        _LATTICE_CACHE[key] = fcc_lattice_constant_A(crystal, spec.repeat)
    return _LATTICE_CACHE[key]


def run_pack_job(job: PackJob) -> dict[str, Any]:
    """Run one pack and write its results; returns a small summary for the coordinator."""
    started = time.perf_counter()
    if job.threads:
        torch.set_num_threads(job.threads)
    campaign = Campaign.model_validate_json(job.spec_json)
    store = CampaignStore(job.store_path)
    markers = [store.done_dir / f"{t['task_id']}.json" for t in job.tasks]
    if all(m.is_file() for m in markers):
        # A rerun of a pack that finished on a worker retired before it could report.
        _log(f"pack {job.pack_index}: already complete in the store")
        return {
            "pack": job.pack_index,
            "n_tasks": len(job.tasks),
            "n_failed": _count_failed(markers),
            "atom_steps": 0,
            "md_wall_s": 0.0,
            "wall_s": time.perf_counter() - started,
            "device": "",
            "host": socket.gethostname(),
            "resumed_from_step": 0,
            "already_complete": True,
        }
    execution = campaign.execution
    device = resolve_device(execution.device)
    dtype = torch.float64 if execution.dtype == "float64" else torch.float32
    base_dir = Path(job.base_dir)

    ff_name = job.tasks[0]["forcefield"]
    forcefield = _forcefield(campaign, ff_name, base_dir=base_dir)
    atoms_list = [
        build_system(
            campaign.systems[t["system"]],
            base_dir=base_dir,
            vacancy_seed=vacancy_seed(job.campaign_name, t["system"], t["seed"], t["window"]),
            lattice_A=relaxed_lattice_A(campaign, t["system"], t["pressure_bar"], base_dir=base_dir, device=device),
        )
        for t in job.tasks
    ]
    state = state_from_atoms(atoms_list, device=device, dtype=dtype)
    temperature = torch.tensor([t["temperature_K"] for t in job.tasks], dtype=dtype)
    pressure = torch.tensor([t["pressure_bar"] for t in job.tasks], dtype=dtype)
    keys = [replica_key(job.campaign_name, t["task_id"]) for t in job.tasks]

    checkpoint_path = store.checkpoint_path(job.pack_index)
    checkpoint = _load_checkpoint(checkpoint_path, task_ids=[t["task_id"] for t in job.tasks])
    if checkpoint is None and campaign.protocol.minimize.max_steps > 0:
        fire_minimize(
            state,
            forcefield,
            fmax_eV_per_A=campaign.protocol.minimize.fmax_eV_per_A,
            max_steps=campaign.protocol.minimize.max_steps,
            relax_cell=campaign.protocol.minimize.relax_cell,
            pressure_bar=pressure.to(device),
        )
    initial_t = None
    if campaign.protocol.initial_temperature_K is not None:
        initial_t = torch.full_like(temperature, campaign.protocol.initial_temperature_K)

    if checkpoint is not None:
        _log(f"pack {job.pack_index}: resuming from the checkpoint at step {int(checkpoint['step'])}")

    def save_checkpoint(data: dict[str, Any]) -> None:
        data = {**data, "task_ids": [t["task_id"] for t in job.tasks]}
        tmp = checkpoint_path.with_name(checkpoint_path.name + f".{os.getpid()}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, checkpoint_path)
        _log(f"pack {job.pack_index}: checkpoint at step {data['step']}")

    result = run_md(
        state,
        forcefield,
        protocol=md_protocol(campaign),
        temperature_K=temperature,
        pressure_bar=pressure,
        keys=keys,
        initial_temperature_K=initial_t,
        checkpoint=checkpoint,
        checkpoint_every_steps=execution.checkpoint_every_steps,
        vacancy_sites=_vacancy_sites(campaign, job),
        on_checkpoint=save_checkpoint,
    )

    n = len(job.tasks)
    max_atoms = max(len(p) for p in result.final_positions)
    final_positions = np.full((n, max_atoms, 3), np.nan)
    for k, pos in enumerate(result.final_positions):
        final_positions[k, : len(pos)] = pos
    arrays: dict[str, np.ndarray] = dict(result.thermo)
    arrays.update(
        n_atoms=result.n_atoms.astype(np.int32),
        failure_step=result.failure_step.astype(np.int64),
        failure_reason=result.failure_reason.astype(np.int8),
        final_positions=final_positions,
        final_cell=result.final_cell,
    )
    if result.positions is not None:
        arrays["positions"] = result.positions
    arrays["atomic_numbers"] = result.atomic_numbers
    for name in ("velocities", "forces", "cells", "vacancy_site", "n_vacant", "vacancy_jumps", "first_vacancy_jump_fs"):
        value = getattr(result, name)
        if value is not None:
            arrays[name] = value
    store.write_pack(slot_start=job.slot_start, arrays=arrays)
    host = socket.gethostname()
    for k, task in enumerate(job.tasks):
        step = int(result.failure_step[k])
        store.mark_done(
            task["task_id"],
            {
                "task_id": task["task_id"],
                "slot": job.slot_start + k,
                "pack": job.pack_index,
                "failure_step": step,
                "failure_reason": FailureReason(int(result.failure_reason[k])).name.lower(),
                "device": str(device),
                "host": host,
                "resumed_from_step": int(checkpoint["step"]) if checkpoint else 0,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    checkpoint_path.unlink(missing_ok=True)
    return {
        "pack": job.pack_index,
        "n_tasks": n,
        "n_failed": int((result.failure_step >= 0).sum()),
        "atom_steps": result.atom_steps,
        "md_wall_s": result.wall_s,
        "wall_s": time.perf_counter() - started,
        "device": str(device),
        "host": host,
        "resumed_from_step": int(checkpoint["step"]) if checkpoint else 0,
    }


def _count_failed(markers: list[Path]) -> int:
    return sum(json.loads(m.read_text()).get("failure_step", -1) >= 0 for m in markers)


def _log(message: str) -> None:
    """One line in the worker's log (a batch job's stderr file on a cluster)."""
    print(f"{time.strftime('%H:%M:%S')} hts_mlff {message}", file=sys.stderr, flush=True)


def _load_checkpoint(path: Path, *, task_ids: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, weights_only=True)
    except Exception:
        return None
    if data.get("task_ids") != task_ids:
        return None
    return data


def _vacancy_sites(campaign: Campaign, job: PackJob) -> list[torch.Tensor | None] | None:
    """Reference lattice sites (fractional) of every replica when the campaign tracks vacancies."""
    if "vacancy" not in campaign.analyses:
        return None
    out = []
    for task in job.tasks:
        sites = reference_sites(campaign.systems[task["system"]])
        out.append(None if sites is None else torch.as_tensor(sites, dtype=torch.float64))
    return out

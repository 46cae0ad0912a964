"""Run one pack where a worker stands: build its inputs, integrate, write its own store region.

This is the function Dask workers execute (only :func:`_worker_index` asks Dask which worker
it is, to pick a GPU). :func:`build_pack_inputs` builds the pack from its job through the
runtime layer (device, cached force fields and lattices) and the table of stored quantities
(observers); :func:`write_pack_results` writes the pack's rows straight from the worker into
the store (whole chunks of its own), then the completion markers, last. The coordinator only
receives a small summary.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from hts_mlff import runtime
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.guard import FailureReason, GuardLimits
from hts_mlff.engine.md import MDProtocol, PackResult, RunHooks, run_md
from hts_mlff.engine.minimize import fire_minimize
from hts_mlff.engine.observers import Observer
from hts_mlff.engine.refill import Refill, ReplicaStart
from hts_mlff.engine.rng import replica_key
from hts_mlff.engine.state import BatchState, state_from_atoms
from hts_mlff.spec import trust
from hts_mlff.spec.model import Campaign
from hts_mlff.store.integrity import record_pack
from hts_mlff.store.layout import CampaignStore
from hts_mlff.store.quantities import observers_for
from hts_mlff.systems import build_system


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
    #: import paths the coordinator's user allowed (``--allow-code`` or their allow-list)
    approved_imports: tuple[str, ...] = ()


def _worker_index() -> int:
    """Index of this worker process inside its job (the trailing number of its name), else 0."""
    try:
        from distributed import get_worker

        match = re.search(r"(\d+)$", str(get_worker().name))
    except (ImportError, ValueError):
        return 0
    return int(match.group(1)) if match else 0


#: The engine's protocol fields that a campaign's ``protocol:`` spells otherwise (nested or
#: renamed); every other field of :class:`MDProtocol` is copied from the spec field of its name.
_SPELLED_OTHERWISE: dict[str, Callable[[Any], Any]] = {
    "melt_temperature_K": lambda p: None if p.melt_half is None else p.melt_half.temperature_K,
    "melt_steps": lambda p: 0 if p.melt_half is None else p.melt_half.steps,
    "melt_fraction": lambda p: 0.5 if p.melt_half is None else p.melt_half.fraction,
    "skin_A": lambda p: p.neighbor_skin_A,
    "guard": lambda p: GuardLimits(
        max_force_eV_per_A=p.guard.max_force_eV_per_A,
        max_step_displacement_A=p.guard.max_step_displacement_A,
        min_pair_distance_A=p.guard.min_pair_distance_A,
    ),
    "guard_every_steps": lambda p: p.guard.check_every_steps,
}


def md_protocol(campaign: Campaign) -> MDProtocol:
    """The engine's protocol of a campaign: the one place a ``protocol:`` spec becomes an
    :class:`MDProtocol` (a new field of the same name on both sides needs no line here)."""
    p = campaign.protocol
    values = {f.name: getattr(p, f.name) for f in fields(MDProtocol) if f.name not in _SPELLED_OTHERWISE}
    return MDProtocol(**values, **{name: get(p) for name, get in _SPELLED_OTHERWISE.items()})


def vacancy_seed(campaign_name: str, system: str, seed: int, window: int) -> int:
    """Random vacancy sites depend on (campaign, system, seed, window), not on T or P."""
    key = f"{campaign_name}|{system}|{seed}|{window}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


@dataclass
class PackInputs:
    """Everything :func:`run_md` needs for one pack, built where the pack runs."""

    campaign: Campaign
    state: BatchState
    forcefield: ForceField
    protocol: MDProtocol
    temperature_K: torch.Tensor
    pressure_bar: torch.Tensor
    keys: list[int]
    observers: list[Observer]
    device: torch.device
    #: The checkpoint to resume from (None: start fresh).
    resume_from: dict[str, Any] | None = None
    #: The tasks beyond the pack's slots (``execution.tasks_per_slot`` > 1), else None.
    refill: Refill | None = None

    def run(self, hooks: RunHooks | None = None) -> PackResult:
        """Integrate the pack (:func:`run_md`) with these inputs."""
        return run_md(
            self.state,
            self.forcefield,
            protocol=self.protocol,
            temperature_K=self.temperature_K,
            pressure_bar=self.pressure_bar,
            keys=self.keys,
            observers=self.observers,
            hooks=hooks,
            refill=self.refill,
        )


def build_pack_inputs(job: PackJob, *, worker_index: int = 0) -> PackInputs:
    """Build a pack's state, force field, targets, random keys and observers from its job.

    Replicas are built from their tasks alone (system, seed, window, pressure), so a task's
    trajectory does not depend on which pack it is in. With ``execution.tasks_per_slot`` > 1
    the state holds the first ⌈n_tasks / tasks_per_slot⌉ tasks and the rest wait for a free
    slot (:mod:`hts_mlff.engine.refill`); each is built (and relaxed) when a slot takes it.
    """
    campaign = Campaign.model_validate_json(job.spec_json)
    trust.approve(job.approved_imports)
    device = runtime.resolve_device(campaign.execution.device, index=worker_index)
    dtype = runtime.resolve_dtype(campaign.execution.dtype)
    base_dir = Path(job.base_dir)

    def build(task: dict[str, Any]) -> Any:
        return build_system(
            campaign.systems[task["system"]],
            base_dir=base_dir,
            vacancy_seed=vacancy_seed(job.campaign_name, task["system"], task["seed"], task["window"]),
            lattice_A=runtime.campaign_lattice_A(
                campaign, task["system"], task["pressure_bar"], base_dir=base_dir, device=device
            ),
        )

    n_slots = math.ceil(len(job.tasks) / campaign.execution.tasks_per_slot)
    first = job.tasks[:n_slots]
    forcefield = runtime.forcefield(campaign.forcefields[job.tasks[0]["forcefield"]], base_dir=base_dir)
    task_ids = [t["task_id"] for t in job.tasks]
    keys = [replica_key(job.campaign_name, task_id) for task_id in task_ids]
    refill = None
    if n_slots < len(job.tasks):
        minimize = campaign.protocol.minimize

        def load(index: int) -> ReplicaStart:
            task = job.tasks[index]
            alone = state_from_atoms([build(task)], device=device, dtype=dtype)
            if minimize.max_steps > 0:  # as the pack's own start (per-system FIRE: as alone)
                fire_minimize(
                    alone,
                    forcefield,
                    fmax_eV_per_A=minimize.fmax_eV_per_A,
                    max_steps=minimize.max_steps,
                    relax_cell=minimize.relax_cell,
                    pressure_bar=torch.tensor([task["pressure_bar"]], dtype=dtype, device=device),
                )
            return ReplicaStart(positions_A=alone.positions.detach(), cell_A=alone.cell.detach()[0])

        refill = Refill(
            temperature_K=[float(t["temperature_K"]) for t in job.tasks],
            pressure_bar=[float(t["pressure_bar"]) for t in job.tasks],
            keys=keys,
            load=load,
        )
    return PackInputs(
        campaign=campaign,
        state=state_from_atoms([build(t) for t in first], device=device, dtype=dtype),
        forcefield=forcefield,
        protocol=md_protocol(campaign),
        temperature_K=torch.tensor([t["temperature_K"] for t in first], dtype=dtype),
        pressure_bar=torch.tensor([t["pressure_bar"] for t in first], dtype=dtype),
        keys=keys[:n_slots],
        observers=list(observers_for(campaign, [campaign.systems[t["system"]] for t in first]).values()),
        device=device,
        resume_from=_load_checkpoint(CampaignStore(job.store_path).checkpoint_path(job.pack_index), task_ids=task_ids),
        refill=refill,
    )


def write_pack_results(job: PackJob, result: PackResult, *, device: torch.device, resumed_from_step: int) -> None:
    """Write the pack's rows (whole chunks of its own), then every task's completion marker, last."""
    store = CampaignStore(job.store_path)
    regions = store.write_pack(slot_start=job.slot_start, arrays=result.arrays)
    record_pack(store, pack_index=job.pack_index, slot_start=job.slot_start, regions=regions)
    host = socket.gethostname()
    for k, task in enumerate(job.tasks):
        store.mark_done(
            task["task_id"],
            {
                "task_id": task["task_id"],
                "slot": job.slot_start + k,
                "pack": job.pack_index,
                "failure_step": int(result["failure_step"][k]),
                "failure_reason": FailureReason(int(result["failure_reason"][k])).name.lower(),
                "device": str(device),
                "host": host,
                "resumed_from_step": resumed_from_step,
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    store.checkpoint_path(job.pack_index).unlink(missing_ok=True)


def run_pack_job(job: PackJob) -> dict[str, Any]:
    """Run one pack and write its results; returns a small summary for the coordinator."""
    started = time.perf_counter()
    if job.threads:
        torch.set_num_threads(job.threads)
    store = CampaignStore(job.store_path)
    summary: dict[str, Any] = {"pack": job.pack_index, "n_tasks": len(job.tasks), "host": socket.gethostname()}
    markers = [store.done_dir / f"{t['task_id']}.json" for t in job.tasks]
    n_failed = _count_failed(markers) if all(m.is_file() for m in markers) else None
    if n_failed is not None:
        # A rerun of a pack that finished on a worker retired before it could report.
        _log(f"pack {job.pack_index}: already complete in the store")
        summary.update(n_failed=n_failed, atom_steps=0, md_wall_s=0.0, device="", resumed_from_step=0)
        return {**summary, "wall_s": time.perf_counter() - started, "already_complete": True}
    inputs = build_pack_inputs(job, worker_index=_worker_index())
    resumed_from = int(inputs.resume_from["step"]) if inputs.resume_from else 0
    minimize = inputs.campaign.protocol.minimize
    if inputs.resume_from is None and minimize.max_steps > 0:
        fire_minimize(
            inputs.state,
            inputs.forcefield,
            fmax_eV_per_A=minimize.fmax_eV_per_A,
            max_steps=minimize.max_steps,
            relax_cell=minimize.relax_cell,
            pressure_bar=inputs.pressure_bar.to(inputs.device),
        )
    if resumed_from:
        _log(f"pack {job.pack_index}: resuming from the checkpoint at step {resumed_from}")
    checkpoint_path = store.checkpoint_path(job.pack_index)

    def save_checkpoint(data: dict[str, Any]) -> None:
        data = {**data, "task_ids": [t["task_id"] for t in job.tasks]}
        tmp = checkpoint_path.with_name(checkpoint_path.name + f".{os.getpid()}.tmp")
        torch.save(data, tmp)
        os.replace(tmp, checkpoint_path)
        _log(f"pack {job.pack_index}: checkpoint at step {data['step']}")

    hooks = RunHooks(
        resume_from=inputs.resume_from,
        checkpoint_every_steps=inputs.campaign.execution.checkpoint_every_steps,
        on_checkpoint=save_checkpoint,
    )
    result = inputs.run(hooks)
    write_pack_results(job, result, device=inputs.device, resumed_from_step=resumed_from)
    n_failed = int((result["failure_step"] >= 0).sum())
    _log(f"pack {job.pack_index}: {len(job.tasks)} tasks written ({n_failed} failed), MD {result.wall_s:.1f} s")
    summary.update(
        n_failed=n_failed,
        atom_steps=result.atom_steps,
        md_wall_s=result.wall_s,
        device=str(inputs.device),
        resumed_from_step=resumed_from,
    )
    return {**summary, "wall_s": time.perf_counter() - started}


def _count_failed(markers: list[Path]) -> int | None:
    """Failed tasks among the markers; None when one of them cannot be read (run the pack)."""
    try:
        return sum(json.loads(m.read_text()).get("failure_step", -1) >= 0 for m in markers)
    except (OSError, ValueError, AttributeError):
        return None


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

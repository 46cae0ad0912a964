"""Wall-time estimate of a campaign from MD rates measured on this machine (``hts-mlff plan --measure``).

For every (force field, system) of the plan, the first pack is built exactly as a worker
would build it (:func:`hts_mlff.schedule.pack_job.build_pack_inputs`) and integrated for a few
warm-up steps and then ``steps`` timed steps of the campaign's own protocol; its rate
(atom-steps per second) times the pack's atom-steps gives each pack's time. Packs of one
group are alike, so the campaign's time is the sum over packs divided by the packs that run
at once (the local cluster's workers; for a batch cluster the jobs × processes it may hold).

The rate is measured with the threads a pack gets here and on this machine's device: a
worker with a GPU, or a busier or quieter node, runs at another rate, and the estimate says
so. Force fields that import code are measured only when that code is approved
(:mod:`hts_mlff.spec.trust`).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from typing import Any

import torch

from hts_mlff.spec.model import AddressClusterSpec, JobQueueClusterSpec, LocalClusterSpec
from hts_mlff.tasks import Plan


@dataclass
class Estimate:
    """Measured rates per (force field, system) and the campaign's estimated wall time."""

    rates: dict[tuple[str, str], float]  # atom-steps per second, one pack here
    pack_seconds: float  # sum over packs, one after the other
    parallel_packs: int
    device: str
    threads: int

    @property
    def wall_s(self) -> float:
        return self.pack_seconds / max(self.parallel_packs, 1)


def parallel_packs(campaign: Any) -> int:
    """Packs that run at once on the campaign's cluster (1 when unknown)."""
    cluster = campaign.cluster
    if isinstance(cluster, LocalClusterSpec):
        return cluster.n_workers
    if isinstance(cluster, JobQueueClusterSpec):
        jobs = cluster.jobs or (cluster.adapt.maximum_jobs if cluster.adapt is not None else 1)
        return jobs * (cluster.processes or max(cluster.gpus_per_job, 1))
    if isinstance(cluster, AddressClusterSpec):
        return 1
    return 1


def measure(plan: Plan, *, base_dir: Any, steps: int = 20, warmup_steps: int = 5) -> Estimate:
    """Measure one pack per (force field, system) and estimate the campaign's wall time."""
    from hts_mlff.engine.md import run_md
    from hts_mlff.schedule.pack_job import PackJob, build_pack_inputs

    campaign = plan.campaign
    threads = campaign.execution.threads_per_pack or max(1, (os.cpu_count() or 1) // parallel_packs(campaign))
    torch.set_num_threads(threads)
    rates: dict[tuple[str, str], float] = {}
    device = "cpu"
    for pack in plan.packs:
        key = (pack.forcefield, pack.system)
        if key in rates:
            continue
        job = PackJob(
            campaign_name=campaign.name,
            spec_json=campaign.model_dump_json(),
            base_dir=str(base_dir),
            store_path=os.devnull,
            pack_index=pack.index,
            slot_start=pack.slot_start,
            tasks=[plan.tasks.row(int(i)) for i in pack.rows],
        )
        inputs = build_pack_inputs(job)
        device = str(inputs.device)
        n_atoms = int(inputs.state.n_atoms)
        protocol = dataclasses.replace(
            inputs.protocol, equilibration_steps=warmup_steps, production_steps=steps, sample_every_steps=steps
        )
        run_md(  # warm-up: the first neighbour list, allocations, caches
            inputs.state,
            inputs.forcefield,
            protocol=dataclasses.replace(protocol, equilibration_steps=0, production_steps=warmup_steps,
                                         sample_every_steps=warmup_steps),
            temperature_K=inputs.temperature_K,
            pressure_bar=inputs.pressure_bar,
            keys=inputs.keys,
            observers=inputs.observers,
        )  # fmt: skip
        started = time.perf_counter()
        run_md(
            inputs.state,
            inputs.forcefield,
            protocol=dataclasses.replace(protocol, equilibration_steps=0),
            temperature_K=inputs.temperature_K,
            pressure_bar=inputs.pressure_bar,
            keys=inputs.keys,
            observers=inputs.observers,  # the campaign's on-the-fly analyses cost time too
        )
        rates[key] = n_atoms * steps / max(time.perf_counter() - started, 1e-9)
    total = 0.0
    for pack in plan.packs:
        atoms = int(plan.tasks.n_atoms[pack.rows].sum())
        total += atoms * plan.total_steps / rates[(pack.forcefield, pack.system)]
    return Estimate(
        rates=rates, pack_seconds=total, parallel_packs=parallel_packs(campaign), device=device, threads=threads
    )

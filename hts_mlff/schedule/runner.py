"""Coordinator: prepare the store, start a cluster, submit packs, follow them to the end.

The coordinator writes the store template once, submits every pack that still has tasks
without a completion marker, and collects small summaries as packs finish (results are
written by the workers themselves). Interrupting it at any moment leaves the store
readable; running again skips completed tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hts_mlff.schedule.pack_job import PackJob, md_protocol, run_pack_job
from hts_mlff.spec.load import LoadedCampaign
from hts_mlff.spec.trust import approve_campaign
from hts_mlff.store.integrity import forget_damaged, quick_check, verify
from hts_mlff.store.layout import CampaignStore, StoreError
from hts_mlff.store.lock import run_lock
from hts_mlff.store.quantities import array_specs, sample_coordinates
from hts_mlff.tasks import AXES, Plan, expand


@dataclass
class RunReport:
    """What one ``run_campaign`` call did."""

    store_path: Path
    n_tasks: int
    n_skipped: int
    n_run: int
    n_failed: int
    atom_steps: int
    wall_s: float
    packs: list[dict[str, Any]] = field(default_factory=list)
    dashboard: str | None = None
    #: Packs that raised: {"pack", "n_tasks", "error"}; their tasks stay missing, the rest ran.
    pack_errors: list[dict[str, Any]] = field(default_factory=list)


def manifest_of(plan: Plan) -> dict[str, Any]:
    tasks = plan.tasks
    slot = np.empty(len(tasks), dtype=np.int64)
    pack = np.empty(len(tasks), dtype=np.int64)
    for p in plan.packs:
        slot[p.rows] = p.slots
        pack[p.rows] = p.index
    columns: dict[str, list[Any]] = {"task_id": tasks.task_id.tolist()}
    for axis in AXES:
        columns[axis] = getattr(tasks, axis).tolist()
    columns.update(n_atoms=tasks.n_atoms.tolist(), slot=slot.tolist(), pack=pack.tolist())
    packs = [{"index": p.index, "slot_start": p.slot_start, "n": len(p.rows)} for p in plan.packs]
    return {"columns": columns, "packs": packs, "chunk_size": plan.chunk_size}


def prepare_store(loaded: LoadedCampaign, plan: Plan) -> CampaignStore:
    """Create the store, or check that an existing one belongs to this campaign.

    An existing store is reused when every task of the campaign is already laid out in it
    (settings that do not change results — pack size, cluster, device — may differ, and
    sweep values may have been removed). Tasks the store has no slot for are appended when they
    come from added sweep values (:mod:`hts_mlff.schedule.extend`); an edit that would change
    stored results is refused by name, and nothing in the store is modified then.
    """
    spec_json = loaded.spec.model_dump_json()
    store = CampaignStore(loaded.store_path)
    if store.path.exists() and any(store.path.iterdir()):
        attrs = store.check_readable()
        if attrs.get("campaign") != loaded.spec.name:
            raise StoreError(
                f"{store.path}: belongs to campaign {attrs.get('campaign')!r}, not {loaded.spec.name!r}; "
                "choose another 'store' path"
            )
        from hts_mlff.schedule.extend import extend_store
        from hts_mlff.spec.model import Campaign

        stored = Campaign.model_validate(attrs["spec"])
        extend_store(store, plan, stored=stored, base_dir=loaded.base_dir, campaign_text=loaded.text)
        attrs = store.attrs()
        store.clean_partial_files()
        layout = attrs.get("layout", {})
        sizes = {k: layout[k] for k in ("n_slots", "chunk_size", "n_frames", "max_atoms") if k in layout}
        if len(sizes) == 4:
            time_fs = md_protocol(loaded.spec).sample_times_fs
            store.restore_missing_arrays(
                arrays=array_specs(loaded.spec, **sizes), coords=sample_coordinates(loaded.spec, time_fs=time_fs)
            )
        return store
    campaign = loaded.spec
    sizes = {"n_slots": plan.n_slots, "chunk_size": plan.chunk_size, "n_frames": plan.n_frames}
    sizes["max_atoms"] = plan.max_atoms
    time_fs = md_protocol(campaign).sample_times_fs
    store.create(
        arrays=array_specs(campaign, **sizes),
        coords=sample_coordinates(campaign, time_fs=time_fs),
        manifest=manifest_of(plan),
        provenance={
            "campaign": campaign.name,
            "spec_json": spec_json,
            "campaign_file": str(loaded.path),
            "campaign_text": loaded.text,
            "layout": sizes,
        },
    )
    return store


def pending_jobs(
    loaded: LoadedCampaign,
    plan: Plan,
    store: CampaignStore,
    *,
    threads: int | None,
    approved_imports: tuple[str, ...] = (),
    extra_task_ids: frozenset[str] = frozenset(),
) -> list[PackJob]:
    """One job per stored pack that still has tasks of this campaign without a marker.

    Slots come from the store's manifest, so a resumed run writes exactly where the
    first run would have.
    """
    done = set(store.done_markers())
    wanted = set(plan.tasks.task_id.tolist()) | set(extra_task_ids)
    manifest = store.manifest()
    columns = manifest["columns"]
    names = list(columns)
    by_pack: dict[int, list[dict[str, Any]]] = {}
    for k in range(len(columns["task_id"])):
        task_id = columns["task_id"][k]
        if task_id in done or task_id not in wanted:
            continue
        row = {name: columns[name][k] for name in names}
        by_pack.setdefault(row["pack"], []).append(row)
    spec_json = loaded.spec.model_dump_json()
    jobs = []
    for pack_index in sorted(by_pack):
        rows = sorted(by_pack[pack_index], key=lambda r: r["slot"])
        # A job writes a contiguous run of slots: fill gaps (already done tasks) by rerunning them.
        lo, hi = rows[0]["slot"], rows[-1]["slot"]
        if hi - lo + 1 != len(rows):
            slot_to_row = {
                columns["slot"][k]: k for k in range(len(columns["task_id"])) if columns["pack"][k] == pack_index
            }
            rows = [{name: columns[name][slot_to_row[s]] for name in names} for s in range(lo, hi + 1)]
        jobs.append(
            PackJob(
                campaign_name=loaded.spec.name,
                spec_json=spec_json,
                base_dir=str(loaded.base_dir),
                store_path=str(store.path),
                pack_index=pack_index,
                slot_start=lo,
                tasks=rows,
                threads=threads,
                approved_imports=approved_imports,
            )
        )
    return jobs


def _refuse_in_a_worker_import() -> None:
    """A script that calls :func:`run_campaign` at top level is imported again by each local
    worker process Dask starts (as ``__mp_main__``); the run must not start again there."""
    import multiprocessing
    import sys

    if "__mp_main__" in sys.modules and multiprocessing.current_process().name != "MainProcess":
        raise RuntimeError(
            "run_campaign was called while a Dask worker process imported your script: put the calls "
            'under `if __name__ == "__main__":` (the worker processes import the main module again)'
        )


def run_campaign(
    loaded: LoadedCampaign,
    *,
    client: Any | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    allow_code: bool = False,
    force: bool = False,
    verify_store: bool = True,
    extra_task_ids: frozenset[str] = frozenset(),
) -> RunReport:
    """Run every task of a campaign that is not done yet.

    Args:
        loaded: a validated campaign (:func:`hts_mlff.load_campaign`).
        client: an existing ``distributed.Client``; default: start the campaign's cluster.
        on_event: progress callback, called as ``on_event(kind, info)`` with kinds
            ``start`` (totals, dashboard), ``pack`` (a finished pack) and ``end``.
        allow_code: run the code the campaign names (imported force fields, job-script
            prologue lines); without it (or the user's allow-list) such a campaign raises
            :class:`hts_mlff.spec.trust.CodeNotAllowedError` before anything is written.
        force: take over a run lock left by another host (a run known to be dead).
        verify_store: check every recorded chunk's checksum first (else sizes only) and rerun
            the tasks of damaged packs (event ``damaged``); malformed markers count as not done.
        extra_task_ids: tasks the store holds beyond the sweep's (added by adaptive sampling)
            that this run should also complete.

    Kept as one function (≈ 90 lines): the coordinator's life in order — store, lock,
    cluster, submit, collect, close — with the cluster closed in one ``finally``.
    """
    from distributed import as_completed

    from hts_mlff.schedule.clusters import ClusterHandle, start_cluster, warm_up_workers

    _refuse_in_a_worker_import()
    started = time.perf_counter()
    approved = tuple(
        approve_campaign(loaded.spec, allow_code=allow_code, source=str(loaded.path), base_dir=loaded.base_dir)
    )
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    emit = on_event or (lambda kind, info: None)
    with run_lock(loaded.store_path, force=force):
        store = prepare_store(loaded, plan)
        integrity = verify(store) if verify_store else quick_check(store)
        if integrity.damaged_tasks or integrity.malformed:
            forget_damaged(store, integrity)
            emit(
                "damaged",
                {
                    "n_tasks": len(integrity.damaged_tasks),
                    "packs": sorted(integrity.damaged_packs),
                    "malformed": list(integrity.malformed),
                },
            )
        handle = (
            start_cluster(loaded.spec)
            if client is None
            else ClusterHandle(client, None, loaded.spec.execution.threads_per_pack)
        )
        try:
            jobs = pending_jobs(
                loaded,
                plan,
                store,
                threads=handle.threads_per_pack,
                approved_imports=approved,
                extra_task_ids=extra_task_ids,
            )
            n_pending = sum(len(j.tasks) for j in jobs)
            report = RunReport(
                store_path=store.path,
                n_tasks=len(plan.tasks) + len(extra_task_ids),
                n_skipped=len(plan.tasks) + len(extra_task_ids) - n_pending,
                n_run=0,
                n_failed=0,
                atom_steps=0,
                wall_s=0.0,
                dashboard=handle.dashboard_link,
            )
            emit(
                "start",
                {
                    "n_tasks": len(plan.tasks) + len(extra_task_ids),
                    "n_pending": n_pending,
                    "n_packs": len(jobs),
                    "atom_steps": sum(sum(t["n_atoms"] for t in j.tasks) for j in jobs) * plan.total_steps,
                    "dashboard": handle.dashboard_link,
                },
            )
            if jobs:
                warm_up_workers(handle.client)
            resources = {"GPU": 1} if handle.use_gpu_resource else None
            futures = [
                handle.client.submit(
                    run_pack_job, job, pure=False, resources=resources, key=f"pack-{job.pack_index}-{loaded.spec.name}"
                )
                for job in jobs
            ]
            if jobs and handle.cluster is not None:
                # After submitting, so an adaptive cluster sees the work and starts jobs.
                emit("waiting", {})
                handle.wait_for_workers(timeout_s=getattr(loaded.spec.cluster, "wait_for_workers_s", None))
            job_of = {future.key: job for future, job in zip(futures, jobs, strict=True)}
            pending = as_completed(futures)
            for future in pending:
                try:
                    summary = future.result()
                except Exception as exc:  # one bad pack must not stop the others
                    job = job_of[future.key]
                    error = {"pack": job.pack_index, "n_tasks": len(job.tasks), "error": f"{type(exc).__name__}: {exc}"}
                    report.pack_errors.append(error)
                    future.release()
                    emit("pack_error", error)
                    continue
                report.n_run += summary["n_tasks"]
                report.n_failed += summary["n_failed"]
                report.atom_steps += summary["atom_steps"]
                report.packs.append(summary)
                future.release()
                emit("pack", summary)
        finally:
            if client is None:
                handle.close()
        store.consolidate()
    report.wall_s = time.perf_counter() - started
    emit("end", vars(report))
    return report

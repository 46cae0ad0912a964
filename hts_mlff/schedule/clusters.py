"""Start the Dask cluster a campaign's ``cluster`` section asks for."""

from __future__ import annotations

import os
from typing import Any

from hts_mlff.spec.model import Campaign


def start_client(campaign: Campaign) -> tuple[Any, int | None]:
    """A connected ``distributed.Client`` and the torch threads each pack should use."""
    from distributed import Client, LocalCluster

    spec = campaign.cluster
    if spec.kind != "local":  # pragma: no cover - other kinds arrive with the jobqueue work
        raise NotImplementedError(f"cluster kind {spec.kind!r} is not available yet")
    cores = os.cpu_count() or 1
    threads = campaign.execution.threads_per_pack or max(1, cores // (spec.n_workers * spec.threads_per_worker))
    cluster = LocalCluster(
        n_workers=spec.n_workers,
        threads_per_worker=spec.threads_per_worker,
        processes=spec.processes,
        memory_limit=spec.memory_limit,
        dashboard_address=spec.dashboard_address,
        silence_logs=40,
    )
    return Client(cluster), threads

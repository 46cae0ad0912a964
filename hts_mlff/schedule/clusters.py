"""Start the Dask cluster a campaign's ``cluster`` section asks for.

``local`` starts an embedded ``distributed.LocalCluster``; ``slurm``, ``pbs``, ``sge``,
``lsf`` and ``htcondor`` start a dask-jobqueue cluster whose defaults come from the user's
Dask configuration (``~/.config/dask/jobqueue.yaml``): the campaign passes only what it
sets. ``address`` attaches to a running scheduler.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from dataclasses import dataclass, field
from typing import Any

from hts_mlff.spec.model import AddressClusterSpec, Campaign, JobQueueClusterSpec, LocalClusterSpec

JOBQUEUE_CLASSES = {
    "slurm": "SLURMCluster",
    "pbs": "PBSCluster",
    "sge": "SGECluster",
    "lsf": "LSFCluster",
    "htcondor": "HTCondorCluster",
}
_DEFAULT_GPU_DIRECTIVE = {"slurm": "gres", "pbs": "ngpus", "lsf": "lsf"}
#: The dashboard listens on this machine only unless a campaign asks otherwise.
LOCAL_DASHBOARD = "127.0.0.1:8787"


class ClusterError(RuntimeError):
    """The cluster could not be started or its jobs were refused by the batch system."""


def shell_word(value: str) -> str:
    """``value`` as one shell word: quoted by :func:`shlex.quote`, or in double quotes when it holds
    $VAR references to expand on the compute node (the spec's allow-list leaves no other
    character that double quotes would let through)."""
    if "$" in value:
        return f'"{value}"'
    return shlex.quote(value)


def walltime_seconds(walltime: str) -> int:
    """'D-HH:MM:SS', 'HH:MM:SS' or 'HH:MM' → seconds."""
    days = 0
    if "-" in walltime:
        d, walltime = walltime.split("-", 1)
        days = int(d)
    parts = [int(p) for p in walltime.split(":")]
    if len(parts) == 2:
        parts.append(0)
    hours, minutes, seconds = parts
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def worker_lifetime(walltime: str) -> tuple[int, int]:
    """(lifetime, stagger) in s: workers retire before the batch system kills their job.

    The margin covers the worker's start-up inside the job and the hand-over of its task:
    10 % of the walltime, at least 15 s, at most 10 minutes.
    """
    total = walltime_seconds(walltime)
    margin = int(min(max(0.1 * total, 15), 600))
    stagger = int(min(max(0.02 * total, 2), 120))
    return max(total - margin - stagger, 5), stagger


def gpu_directive(spec: JobQueueClusterSpec) -> list[str]:
    """The job-script directive that asks for ``gpus_per_job`` GPUs (header text after the prefix)."""
    if spec.gpus_per_job == 0:
        return []
    style = _DEFAULT_GPU_DIRECTIVE.get(spec.kind, "none") if spec.gpu_directive == "auto" else spec.gpu_directive
    n = spec.gpus_per_job
    return {
        "gres": [f"--gres=gpu:{n}"],
        "gpus": [f"--gpus={n}"],
        "ngpus": [f"-l ngpus={n}"],
        "lsf": [f"-gpu num={n}"],
        "none": [],
    }[style]


def jobqueue_kwargs(spec: JobQueueClusterSpec) -> dict[str, Any]:
    """Keyword arguments for the dask-jobqueue class: only what the campaign sets."""
    kwargs: dict[str, Any] = {}
    for name in (
        "config_name",
        "cores",
        "memory",
        "walltime",
        "queue",
        "local_directory",
        "log_directory",
        "interface",
        "python",
    ):
        value = getattr(spec, name)
        if value is not None:
            kwargs[name] = shell_word(value) if name in ("local_directory", "python") else value
    processes = spec.processes or (spec.gpus_per_job or None)
    if processes is not None:
        kwargs["processes"] = processes
    if spec.account is not None:
        kwargs["project" if spec.kind in ("sge", "lsf") else "account"] = spec.account
    kwargs["scheduler_options"] = _scheduler_options(spec)
    directives = gpu_directive(spec) + list(spec.job_extra_directives)
    if directives:
        kwargs["job_extra_directives"] = directives
    if spec.job_script_prologue:
        kwargs["job_script_prologue"] = list(spec.job_script_prologue)
    extra_args: list[str] = []
    if spec.gpus_per_job:
        extra_args += ["--resources", "GPU=1"]  # one worker process per GPU
    walltime = spec.walltime or _configured_walltime(spec)
    if spec.worker_lifetime_s is not None:
        extra_args += ["--lifetime", f"{spec.worker_lifetime_s}s", "--lifetime-stagger", "2s"]
    elif walltime:
        lifetime, stagger = worker_lifetime(walltime)
        extra_args += ["--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s"]
    if extra_args:
        kwargs["worker_extra_args"] = extra_args
    return kwargs


def _scheduler_options(spec: JobQueueClusterSpec) -> dict[str, Any]:
    """The user's ``scheduler-options`` with the dashboard on localhost unless they (or the
    campaign) say otherwise (dask-jobqueue's own default listens on every interface)."""
    import dask

    section = spec.config_name or spec.kind
    options = dict(dask.config.get(f"jobqueue.{section}.scheduler-options", default=None) or {})
    options.setdefault("dashboard_address", LOCAL_DASHBOARD)
    if spec.dashboard_address is not None:
        options["dashboard_address"] = spec.dashboard_address
    return options


def _configured_walltime(spec: JobQueueClusterSpec) -> str | None:
    import dask

    section = spec.config_name or spec.kind
    return dask.config.get(f"jobqueue.{section}.walltime", default=None)


def make_jobqueue_cluster(spec: JobQueueClusterSpec, **overrides: Any) -> Any:
    """The dask-jobqueue cluster object (no jobs submitted yet)."""
    import dask_jobqueue

    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[spec.kind])
    try:
        return cls(**{**jobqueue_kwargs(spec), **overrides})
    except ValueError as exc:  # e.g. cores/memory neither in the campaign nor in jobqueue.yaml
        raise ClusterError(f"cluster ({spec.kind}): {exc}") from None


@dataclass
class _SubmitErrors(logging.Handler):
    """Collects batch-submission errors that dask-jobqueue only logs."""

    messages: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        logging.Handler.__init__(self, level=logging.ERROR)

    def __hash__(self) -> int:
        return id(self)

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + str(record.exc_info[1])
        if "non-zero exit code" in text or "sbatch" in text or "qsub" in text:
            self.messages.append(text)


@dataclass
class ClusterHandle:
    """A connected client, the cluster it owns (None when attached) and pack threading."""

    client: Any
    cluster: Any | None
    threads_per_pack: int | None
    use_gpu_resource: bool = False
    _handler: _SubmitErrors | None = None

    @property
    def dashboard_link(self) -> str | None:
        """The dashboard's URL at the address it really listens on (Dask's own link names the
        machine's network address even when the dashboard is bound to 127.0.0.1)."""
        server = getattr(getattr(self.cluster, "scheduler", None), "http_server", None)
        sockets = list(getattr(server, "_sockets", {}).values())
        if not sockets:
            return self.client.dashboard_link
        host, port = sockets[0].getsockname()[:2]
        if host in ("0.0.0.0", "::"):
            return self.client.dashboard_link + " (listening on every network interface)"
        return f"http://{host}:{port}/status"

    def close(self) -> None:
        if self._handler is not None:
            for name in ("distributed", "tornado", "asyncio", "dask_jobqueue"):
                logging.getLogger(name).removeHandler(self._handler)
        self.client.close()
        if self.cluster is not None:
            try:
                self.cluster.close()
            except (AssertionError, RuntimeError, OSError) as exc:
                # A SpecCluster whose job was refused cannot close cleanly (its job object never
                # started); the refusal is the error to report, not this one.
                logging.getLogger(__name__).debug("closing the cluster: %r", exc)

    def check_submissions(self) -> None:
        """Raise :class:`ClusterError` if the batch system refused a job."""
        if self.cluster is None or not hasattr(self.cluster, "job_script"):
            return
        failed = [name for name, job in list(self.cluster.workers.items()) if getattr(job, "job_id", "") is None]
        if failed or (self._handler is not None and self._handler.messages):
            detail = "\n".join(self._handler.messages[-1:]) if self._handler else ""
            raise ClusterError(
                "the batch system refused the worker job"
                + (f":\n{detail}" if detail else "")
                + "\njob script:\n"
                + self.cluster.job_script()
            )

    def wait_for_workers(self, *, timeout_s: float | None, poll_s: float = 0.5) -> None:
        """Block until one worker joined; surface refused submissions at once."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.client.scheduler_info(n_workers=-1)["workers"]:
            self.check_submissions()
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"no worker joined within {timeout_s:g} s (jobs still queued, or failing to start)")
            time.sleep(poll_s)


def _warm_up() -> None:
    """Import the engine (torch, vesin, zarr) when a worker starts, not inside its first pack."""
    import hts_mlff.schedule.pack_job  # noqa: F401


def warm_up_workers(client: Any) -> None:
    """Register a worker plugin that imports the engine on every worker, present and future."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class EngineWarmUp(WorkerPlugin):
        name = "hts-mlff-warm-up"

        def setup(self, worker: Any) -> None:
            _warm_up()

    client.register_plugin(EngineWarmUp())


def start_cluster(campaign: Campaign) -> ClusterHandle:
    """Start (or attach to) the campaign's cluster and return a connected handle."""
    from distributed import Client, LocalCluster

    spec = campaign.cluster
    threads = campaign.execution.threads_per_pack
    if isinstance(spec, LocalClusterSpec):
        cores = os.cpu_count() or 1
        cluster = LocalCluster(
            n_workers=spec.n_workers,
            threads_per_worker=spec.threads_per_worker,
            processes=spec.processes,
            memory_limit=spec.memory_limit,
            dashboard_address=spec.dashboard_address,
            silence_logs=logging.ERROR,
        )
        threads = threads or max(1, cores // (spec.n_workers * spec.threads_per_worker))
        return ClusterHandle(Client(cluster), cluster, threads)
    if isinstance(spec, AddressClusterSpec):
        if os.path.isfile(spec.address):
            return ClusterHandle(Client(scheduler_file=spec.address), None, threads)
        return ClusterHandle(Client(spec.address), None, threads)
    handler = _SubmitErrors()
    for name in ("distributed", "tornado", "asyncio", "dask_jobqueue"):
        logging.getLogger(name).addHandler(handler)
    cluster = make_jobqueue_cluster(spec)
    if spec.adapt is not None:
        cluster.adapt(minimum_jobs=spec.adapt.minimum_jobs, maximum_jobs=spec.adapt.maximum_jobs)
    else:
        cluster.scale(jobs=spec.jobs or 1)
    if threads is None:
        match = re.search(r"--nthreads (\d+)", cluster.job_script())
        threads = int(match.group(1)) if match else None
    return ClusterHandle(Client(cluster), cluster, threads, use_gpu_resource=spec.gpus_per_job > 0, _handler=handler)

"""The embedded cluster's dashboard listens on this machine only unless the campaign says otherwise."""

from __future__ import annotations

import dask

from hts_mlff.schedule.clusters import jobqueue_kwargs, start_cluster
from hts_mlff.spec.model import Campaign, JobQueueClusterSpec, LocalClusterSpec


def _bound_hosts(handle) -> set[str]:
    return {s.getsockname()[0] for s in handle.cluster.scheduler.http_server._sockets.values()}


def test_the_default_local_dashboard_is_bound_to_localhost_and_says_so():
    assert LocalClusterSpec().dashboard_address.startswith("127.0.0.1:")
    campaign = Campaign.model_validate(
        {
            "name": "d",
            "store": "d.zarr",
            "systems": {"ar": {"kind": "fcc", "element": "Ar", "lattice_A": 5.3, "repeat": [2, 2, 2]}},
            "forcefields": {"lj": {"kind": "lennard_jones", "epsilon_eV": 0.0103, "sigma_A": 3.4, "cutoff_A": 8.5}},
            "protocol": {"timestep_fs": 10, "production_steps": 10},
            "sweep": {"temperature_K": [10]},
            "cluster": {"kind": "local", "processes": False},
        }
    )
    handle = start_cluster(campaign)
    try:
        assert _bound_hosts(handle) == {"127.0.0.1"}
        assert handle.dashboard_link.startswith("http://127.0.0.1:")
    finally:
        handle.close()


def test_jobqueue_dashboards_default_to_localhost_and_keep_the_users_settings():
    options = jobqueue_kwargs(JobQueueClusterSpec(kind="slurm"))["scheduler_options"]
    assert options["dashboard_address"] == "127.0.0.1:8787"
    with dask.config.set({"jobqueue.slurm.scheduler-options": {"dashboard_address": ":9999", "port": 1234}}):
        options = jobqueue_kwargs(JobQueueClusterSpec(kind="slurm"))["scheduler_options"]
        assert options == {"dashboard_address": ":9999", "port": 1234}
        asked = jobqueue_kwargs(JobQueueClusterSpec(kind="slurm", dashboard_address="0.0.0.0:8790"))
        assert asked["scheduler_options"]["dashboard_address"] == "0.0.0.0:8790"

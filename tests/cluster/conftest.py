"""A real SLURM for the jobqueue tests (marker ``slurm``; skipped where it cannot start)."""

from __future__ import annotations

import os

import pytest

from tests.cluster.local_slurm import LocalSlurm, available


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    why = available()
    if why is not None:
        pytest.skip(f"no local SLURM: {why}")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    yield cluster
    cluster.stop()
    if previous is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = previous

"""Campaigns through a real SLURM: same results as local, walltime kills, refused jobs."""

from __future__ import annotations

import time

import numpy as np
import pytest

import hts_mlff
from hts_mlff.schedule.clusters import ClusterError
from tests.schedule.conftest import write_campaign

pytestmark = pytest.mark.slurm


def _slurm_section(tmp_path, **extra) -> str:
    fields = {
        "kind": "slurm",
        "cores": 1,
        "memory": "2GB",
        "processes": 1,
        "walltime": "00:10:00",
        "interface": "lo",
        "log_directory": str(tmp_path / "logs"),
        "wait_for_workers_s": 60,
        **extra,
    }
    lines = ["cluster:"]
    for key, value in fields.items():
        lines.append(f"  {key}: {value}" if not isinstance(value, dict) else f"  {key}: {value}".replace("'", ""))
    return "\n".join(lines) + "\n"


def _resumed_steps(store) -> list[int]:
    """Per task, the checkpoint step its pack resumed from (0: ran in one go), from the markers."""
    import json

    return [json.loads(m.read_text())["resumed_from_step"] for m in (store / "_hts" / "done").glob("*.json")]


def _with_cluster(path, section: str):
    text = path.read_text()
    text = text[: text.index("cluster:")] + section
    path.write_text(text)
    return hts_mlff.load_campaign(path)


def test_campaign_through_slurm_equals_a_local_run(tmp_path, slurm, dask_client):
    local = hts_mlff.load_campaign(write_campaign(tmp_path, name="s", store="local.zarr"))
    hts_mlff.run_campaign(local, client=dask_client)
    remote = _with_cluster(
        write_campaign(tmp_path / "..", name="s", store=str(tmp_path / "slurm.zarr")), _slurm_section(tmp_path)
    )
    report = hts_mlff.run_campaign(remote)
    assert report.n_run == 8
    assert {p["host"] for p in report.packs} == {slurm.host}  # the SLURM node
    # Every pack ran inside a SLURM job: the workers' job logs (named by job id) say so.
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.err"))
    assert all(f"hts_mlff pack {p['pack']}: " in logs for p in report.packs), logs[-2000:]
    assert all(any(ch.isdigit() for ch in p.stem) for p in (tmp_path / "logs").glob("*.err"))
    a = hts_mlff.open_campaign(local.store_path)
    b = hts_mlff.open_campaign(remote.store_path)
    for name in ("total_energy_eV", "virial_pressure_bar", "final_positions"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_refused_sbatch_is_a_clear_error(tmp_path, slurm):
    loaded = _with_cluster(write_campaign(tmp_path, name="g"), _slurm_section(tmp_path, gpus_per_job=1))
    with pytest.raises(ClusterError, match=r"(?s)refused the worker job.*gres"):
        hts_mlff.run_campaign(loaded)
    assert hts_mlff.open_campaign(loaded.store_path).status.values.tolist().count("missing") == 8


def _one_long_pack(tmp_path, *, name: str, steps: int):
    """A campaign of one pack (8 replicas of 108 atoms) that checkpoints every 500 steps."""
    path = write_campaign(tmp_path, name=name, steps=steps, seeds="[0, 1, 2, 3]", pack_size=8)
    text = path.read_text().replace("dtype: float64", "dtype: float64\n  checkpoint_every_steps: 500")
    path.write_text(text.replace("seed: [0, 1, 2, 3]", "seed: [0, 1, 2, 3]\n  system: [ar108]"))
    return path


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_walltime_retirement_mid_pack_resumes_from_the_checkpoint(tmp_path, slurm):
    # ~65 s of one core (3.2 ms/step here): a worker retiring after 25 s (killed 15 s later if its
    # pack still runs) always stops mid-pack, whatever the machine's speed within a factor ~1.5.
    path = _one_long_pack(tmp_path, name="w", steps=20000)
    # A 1-minute walltime; workers retire after 25 s and a new job picks the pack up from its checkpoint.
    section = _slurm_section(tmp_path, walltime='"00:01:00"', worker_lifetime_s=25, adapt="{maximum_jobs: 1}")
    loaded = _with_cluster(path, section)
    report = hts_mlff.run_campaign(loaded)
    assert report.n_run == 8 and report.n_failed == 0
    assert max(_resumed_steps(loaded.store_path)) > 0
    ds = hts_mlff.open_campaign(loaded.store_path)
    assert set(ds.status.values) == {"done"}
    assert np.isfinite(ds.total_energy_eV.values).all()


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_job_killed_mid_pack_is_replaced_and_the_pack_resumes(tmp_path, slurm):
    import subprocess
    import threading

    loaded = _with_cluster(
        _one_long_pack(tmp_path, name="k", steps=8000), _slurm_section(tmp_path, adapt="{maximum_jobs: 1}")
    )
    checkpoint = loaded.store_path / "_hts" / "checkpoints" / "pack-0000000.pt"
    result = {}
    runner = threading.Thread(target=lambda: result.setdefault("report", hts_mlff.run_campaign(loaded)))
    runner.start()
    deadline = time.time() + 120
    while not checkpoint.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists()
    subprocess.run(["scancel", "--full", "-u", "root"], env=slurm.env, check=True)  # as at walltime: no warning
    runner.join(timeout=360)
    report = result["report"]
    assert report.n_run == 8 and report.n_failed == 0
    assert max(_resumed_steps(loaded.store_path)) > 0

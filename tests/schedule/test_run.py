"""Campaigns end to end on a real Dask cluster, into a real Zarr store, read back by xarray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import hts_mlff
from hts_mlff.schedule.pack_job import PackJob, build_pack_inputs
from hts_mlff.store import CampaignStore, StoreError
from tests.schedule.conftest import write_campaign

DATA_VARS = ("kinetic_temperature_K", "total_energy_eV", "virial_pressure_bar", "positions", "final_positions")


def _values(ds):
    return {name: ds[name].values for name in DATA_VARS}


def test_run_then_open_campaign(tmp_path, dask_client):
    loaded = hts_mlff.load_campaign(write_campaign(tmp_path))
    report = hts_mlff.run_campaign(loaded, client=dask_client)
    assert (report.n_tasks, report.n_run, report.n_failed) == (8, 8, 0)

    ds = hts_mlff.open_campaign(loaded.store_path)
    assert ds.sizes["traj"] == 8
    assert set(ds.status.values) == {"done"}
    assert ds.kinetic_temperature_K.chunks is not None  # lazy, dask-backed
    assert ds.kinetic_temperature_K.attrs["units"] == "K"
    assert ds.attrs["campaign"] == "t" and "lennard_jones" in ds.attrs["campaign_text"]
    cold = ds.sel(temperature_K=60.0)
    assert cold.sizes["traj"] == 4
    assert sorted(ds.sel(system="ar107").n_atoms.values.tolist()) == [107] * 4
    # Padding: a 107-atom replica has NaN in the last atom row.
    assert np.isnan(ds.sel(system="ar107").final_positions.values[:, 107]).all()
    hypercube = ds.total_energy_eV.unstack("traj")
    assert {"temperature_K", "seed", "system"} <= set(hypercube.dims)


def test_stored_trajectory_equals_the_engine_run_alone(tmp_path, dask_client):
    loaded = hts_mlff.load_campaign(write_campaign(tmp_path))
    hts_mlff.run_campaign(loaded, client=dask_client)
    ds = hts_mlff.open_campaign(loaded.store_path)
    one = ds.sel(system="ar107", temperature_K=90.0, seed=1)
    task_id = str(one.task_id.values.item())
    # The same task as a pack of its own, built by the worker's own input builder.
    columns = CampaignStore(loaded.store_path).manifest()["columns"]
    k = columns["task_id"].index(task_id)
    job = PackJob(
        campaign_name="t",
        spec_json=loaded.spec.model_dump_json(),
        base_dir=str(loaded.base_dir),
        store_path=str(tmp_path / "scratch.zarr"),
        pack_index=0,
        slot_start=0,
        tasks=[{name: values[k] for name, values in columns.items()}],
    )
    inputs = build_pack_inputs(job)
    assert inputs.state.n_systems == 1 and inputs.state.n_atoms == 107 and inputs.resume_from is None
    assert float(inputs.temperature_K[0]) == 90.0
    alone = inputs.run()
    np.testing.assert_array_equal(one.total_energy_eV.values.ravel(), alone["total_energy_eV"][0])
    np.testing.assert_array_equal(one.positions.values[0, :, :107], alone["positions"][0, :, :107])


def test_packs_that_refill_store_what_one_task_per_replica_stores(tmp_path, dask_client):
    """tasks_per_slot: 2 runs 4 tasks per pack through 2 replicas; every stored task is the same."""
    runs = {}
    for per_slot, pack_size in ((1, 3), (2, 2)):
        folder = tmp_path / f"per_slot_{per_slot}"
        folder.mkdir()
        path = write_campaign(folder, pack_size=pack_size, steps=30)
        path.write_text(path.read_text().replace("dtype: float64", f"dtype: float64\n  tasks_per_slot: {per_slot}"))
        loaded = hts_mlff.load_campaign(path)
        report = hts_mlff.run_campaign(loaded, client=dask_client)
        assert (report.n_tasks, report.n_run, report.n_failed) == (8, 8, 0)
        runs[per_slot] = hts_mlff.open_campaign(loaded.store_path).sortby("task_id")
    packs = CampaignStore(str(tmp_path / "per_slot_2" / "t.zarr")).manifest()["packs"]
    assert [p["n"] for p in packs] == [4, 4]
    one, refilled = runs[1], runs[2]
    np.testing.assert_array_equal(one.task_id.values, refilled.task_id.values)
    for name in (*DATA_VARS, "failure_step", "n_atoms"):
        np.testing.assert_array_equal(one[name].values, refilled[name].values, err_msg=name)


def test_rerun_skips_done_tasks_and_reruns_missing_ones(tmp_path, dask_client):
    loaded = hts_mlff.load_campaign(write_campaign(tmp_path))
    hts_mlff.run_campaign(loaded, client=dask_client)
    before = _values(hts_mlff.open_campaign(loaded.store_path))
    assert hts_mlff.run_campaign(loaded, client=dask_client).n_run == 0

    ds = hts_mlff.open_campaign(loaded.store_path)
    victim = str(ds.task_id.values[5])
    (loaded.store_path / "_hts" / "done" / f"{victim}.json").unlink()
    masked = hts_mlff.open_campaign(loaded.store_path)
    assert (masked.status.values == "missing").sum() == 1
    assert np.isnan(masked.total_energy_eV.values[5]).all()
    report = hts_mlff.run_campaign(loaded, client=dask_client)
    assert report.n_run == 1 and report.n_skipped == 7
    after = _values(hts_mlff.open_campaign(loaded.store_path))
    for name in DATA_VARS:
        np.testing.assert_array_equal(before[name], after[name])


def test_edited_pack_size_reuses_the_store_and_added_seeds_are_appended(tmp_path, dask_client):
    path = write_campaign(tmp_path)
    hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    path.write_text(path.read_text().replace("pack_size: 3", "pack_size: 2"))
    assert hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client).n_run == 0
    path.write_text(path.read_text().replace("seed: [0, 1]", "seed: [0, 1, 2]"))
    report = hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)  # tests/schedule/test_extend.py
    assert report.n_run == 4 and report.n_skipped == 8


def test_store_of_another_campaign_is_refused_untouched(tmp_path, dask_client):
    first = hts_mlff.load_campaign(write_campaign(tmp_path, name="first", store="shared.zarr"))
    hts_mlff.run_campaign(first, client=dask_client)
    meta = first.store_path / "zarr.json"
    stamp = (meta.stat().st_mtime_ns, meta.read_bytes())
    second = hts_mlff.load_campaign(write_campaign(tmp_path, name="second", store="shared.zarr"))
    with pytest.raises(StoreError, match="belongs to campaign 'first'"):
        hts_mlff.run_campaign(second, client=dask_client)
    assert (meta.stat().st_mtime_ns, meta.read_bytes()) == stamp


def test_newer_format_and_unreadable_stores_are_refused(tmp_path, dask_client):
    loaded = hts_mlff.load_campaign(write_campaign(tmp_path))
    hts_mlff.run_campaign(loaded, client=dask_client)
    newer = tmp_path / "newer.zarr"
    shutil.copytree(loaded.store_path, newer)
    meta = json.loads((newer / "zarr.json").read_text())
    meta["attributes"]["hts_mlff"]["format_version"] = 99
    (newer / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="format 99"):
        hts_mlff.open_campaign(newer)
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / "zarr.json").write_text("{not json")
    with pytest.raises(StoreError, match="not a readable Zarr v3 store"):
        hts_mlff.open_campaign(broken)
    with pytest.raises(StoreError, match="no such store"):
        hts_mlff.open_campaign(tmp_path / "absent.zarr")


def _run_cli(path, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "hts_mlff.cli", "run", "--quiet", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        **kwargs,
    )


def test_kill_minus_9_then_resume_matches_an_uninterrupted_run(tmp_path, dask_client):
    reference = hts_mlff.load_campaign(
        write_campaign(tmp_path, name="k", store="ref.zarr", steps=200, seeds="[0, 1, 2, 3, 4]", pack_size=2)
    )
    hts_mlff.run_campaign(reference, client=dask_client)

    path = write_campaign(tmp_path, name="k", store="killed.zarr", steps=200, seeds="[0, 1, 2, 3, 4]", pack_size=2)
    done_dir = tmp_path / "killed.zarr" / "_hts" / "done"
    proc = _run_cli(path)
    deadline = time.time() + 120
    while time.time() < deadline:
        n_done = len(list(done_dir.glob("*.json"))) if done_dir.is_dir() else 0
        if n_done >= 2:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_at_kill = len(list(done_dir.glob("*.json")))
    assert 0 < n_at_kill < 20, "the kill should land mid-campaign"
    time.sleep(1.0)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # orphaned workers, if any, go too
    except ProcessLookupError:
        pass

    partial = hts_mlff.open_campaign(tmp_path / "killed.zarr")  # readable after kill -9
    assert (partial.status.values != "missing").sum() >= 2

    again = _run_cli(path)
    out, _ = again.communicate(timeout=300)
    assert again.returncode == 0, out.decode()
    assert "skipped" in out.decode()
    markers = list(done_dir.glob("*.json"))
    assert len(markers) == 20 and len({m.name for m in markers}) == 20
    ref = hts_mlff.open_campaign(tmp_path / "ref.zarr")
    resumed = hts_mlff.open_campaign(tmp_path / "killed.zarr")
    assert list(ref.task_id.values) == list(resumed.task_id.values)
    for name in DATA_VARS:
        np.testing.assert_array_equal(ref[name].values, resumed[name].values)


def test_exploding_replicas_are_recorded_as_failed(tmp_path, dask_client):
    path = write_campaign(tmp_path, name="boom")
    text = path.read_text().replace("timestep_fs: 10.0", "timestep_fs: 80.0").replace("[60, 90]", "[300, 400]")
    path.write_text(text)
    loaded = hts_mlff.load_campaign(path)
    assert loaded.warnings and loaded.warnings[0].path == "protocol.timestep_fs"
    report = hts_mlff.run_campaign(loaded, client=dask_client)
    assert report.n_failed == report.n_tasks == 8
    ds = hts_mlff.open_campaign(loaded.store_path)
    assert set(ds.status.values) == {"failed"}
    assert (ds.failure_step.values >= 0).all() and (ds.failure_reason.values > 0).all()
    assert all(d.startswith("cpu@") for d in ds.device.values)


def test_a_run_on_a_locked_store_is_refused_before_the_store_is_touched(tmp_path):
    from typer.testing import CliRunner

    from hts_mlff.cli import app
    from hts_mlff.store.lock import run_lock

    path = write_campaign(tmp_path, name="locked")
    store = tmp_path / "t.zarr"
    with run_lock(store):  # another coordinator (this process) holds it
        result = CliRunner().invoke(app, ["run", "-q", str(path)])
    assert result.exit_code == 2, result.output
    assert "another run is using this store" in result.output and "Traceback" not in result.output
    assert not store.exists()

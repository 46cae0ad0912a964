"""The campaign store on disk: template, region writes, completion markers, masking, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zarr

import hts_mlff
from hts_mlff.schedule.runner import pending_jobs, prepare_store
from hts_mlff.spec.model import FORMAT_VERSION
from hts_mlff.store import CampaignStore, StoreError
from hts_mlff.store.layout import atomic_write_text
from hts_mlff.store.quantities import QUANTITIES
from hts_mlff.tasks import expand
from tests.schedule.conftest import write_campaign


def _prepared(tmp_path, **kwargs):
    loaded = hts_mlff.load_campaign(write_campaign(tmp_path, **kwargs))
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    return loaded, plan, prepare_store(loaded, plan)


def test_template_holds_every_declared_array_and_no_data(tmp_path):
    _, plan, store = _prepared(tmp_path)
    root = zarr.open_group(store.path, mode="r")
    names = set(root.array_keys())
    # thermo, the pack's own arrays, positions + cells (the campaign saves positions); no vacancy arrays
    assert {"total_energy_eV", "final_positions", "atomic_numbers", "positions", "cells"} <= names
    assert "vacancy_site" not in names and "velocities" not in names
    for name in names - {"time_fs", "position_time_fs"}:
        q = QUANTITIES[name]
        array = root[name]
        assert tuple(array.metadata.dimension_names) == q.dims, name
        assert array.dtype == np.dtype(q.dtype), name
        assert array.attrs.get("units") == q.units, name
        assert array.shape[0] == plan.n_slots and array.chunks[0] == plan.chunk_size, name
        assert array.nchunks_initialized == 0, name  # nothing written yet
    np.testing.assert_allclose(root["time_fs"][:], np.arange(plan.n_frames) * 100.0)  # 10 fs × every 10 steps
    np.testing.assert_allclose(root["position_time_fs"][:], np.arange(plan.n_frames)[::2] * 100.0)
    assert root["positions"].shape[1] == len(root["position_time_fs"][:])
    manifest = store.manifest()
    assert sorted(manifest["columns"]["task_id"]) == sorted(plan.tasks.task_id.tolist())
    attrs = store.check_readable()
    assert attrs["campaign"] == "t" and attrs["format_version"] == FORMAT_VERSION


def test_a_pack_writes_only_its_own_rows(tmp_path):
    _, plan, store = _prepared(tmp_path)
    pack = plan.packs[1]
    n = len(pack.rows)
    values = np.arange(n * plan.n_frames, dtype=float).reshape(n, plan.n_frames)
    store.write_pack(slot_start=pack.slot_start, arrays={"total_energy_eV": values})
    stored = zarr.open_group(store.path, mode="r")["total_energy_eV"][:]
    np.testing.assert_array_equal(stored[pack.slot_start : pack.slot_start + n], values)
    others = np.ones(len(stored), dtype=bool)
    others[pack.slot_start : pack.slot_start + n] = False
    assert np.isnan(stored[others]).all()


def test_markers_are_atomic_and_torn_ones_do_not_count(tmp_path):
    _, plan, store = _prepared(tmp_path)
    task = plan.tasks.task_id[0]
    store.mark_done(task, {"task_id": task, "pack": 0, "failure_step": -1})
    assert set(store.done_markers()) == {task}
    assert not [p for p in store.done_dir.iterdir() if p.name.endswith(".tmp")]
    # A writer killed before its rename leaves a temporary file; one killed mid-write of a
    # non-atomic writer would leave a torn JSON. Neither counts as done; resume cleans the first.
    (store.done_dir / f".{plan.tasks.task_id[1]}.json.123.tmp").write_text('{"task_id"')
    (store.done_dir / f"{plan.tasks.task_id[2]}.json").write_text('{"task_id": "x", ')
    assert set(store.done_markers()) == {task}
    assert store.clean_partial_files() == 1
    atomic_write_text(store.done_dir / "probe.json", json.dumps({"a": 1}))
    assert json.loads((store.done_dir / "probe.json").read_text()) == {"a": 1}


def test_reader_masks_tasks_without_a_marker(tmp_path):
    _, plan, store = _prepared(tmp_path)
    pack = plan.packs[0]
    n = len(pack.rows)
    # A pack wrote its rows but was killed before the markers of all but its first task.
    store.write_pack(
        slot_start=pack.slot_start,
        arrays={
            "total_energy_eV": np.full((n, plan.n_frames), -5.0),
            "failure_step": np.full(n, 7, dtype=np.int64),
            "n_atoms": np.full(n, 108, dtype=np.int32),
        },
    )
    first = plan.tasks.task_id[pack.rows[0]]
    store.mark_done(first, {"task_id": first, "pack": 0, "failure_step": 7})
    ds = hts_mlff.open_campaign(store.path)
    status = dict(zip(ds.task_id.values.tolist(), ds.status.values.tolist(), strict=True))
    assert status[first] == "failed" and list(status.values()).count("missing") == len(plan.tasks) - 1
    marked = ds.task_id.values == first
    assert (ds.total_energy_eV.values[marked] == -5.0).all()
    assert ds.failure_step.values[marked].tolist() == [7]
    unmarked = ~marked
    assert np.isnan(ds.total_energy_eV.values[unmarked]).all()
    assert (ds.failure_step.values[unmarked] == QUANTITIES["failure_step"].fill_value).all()
    assert (ds.n_atoms.values[unmarked] == 0).all()
    assert ds.failure_step.dtype == np.int64  # masking keeps integer dtypes


def test_a_store_of_another_campaign_or_a_newer_format_is_refused(tmp_path):
    _, _, store = _prepared(tmp_path)
    other = hts_mlff.load_campaign(write_campaign(tmp_path, name="other", store="t.zarr"))
    with pytest.raises(StoreError, match="belongs to campaign 't', not 'other'"):
        prepare_store(other, expand(other.spec, base_dir=other.base_dir))
    # An edited protocol changes what stored tasks were computed with: refused by name, untouched.
    edited = hts_mlff.load_campaign(write_campaign(tmp_path, name="t", steps=80))
    before = (store.path / "_hts" / "tasks.json").read_text()
    with pytest.raises(StoreError, match=r"protocol\.production_steps \(60 → 80\)"):
        prepare_store(edited, expand(edited.spec, base_dir=edited.base_dir))
    assert (store.path / "_hts" / "tasks.json").read_text() == before
    # A store written by a newer hts_mlff names the format versions.
    meta = json.loads((store.path / "zarr.json").read_text())
    meta["attributes"]["hts_mlff"]["format_version"] = FORMAT_VERSION + 1
    (store.path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=f"store format {FORMAT_VERSION + 1}.*reads up to {FORMAT_VERSION}"):
        hts_mlff.open_campaign(store.path)
    with pytest.raises(StoreError, match="no such store"):
        hts_mlff.open_campaign(tmp_path / "nothing.zarr")
    foreign = tmp_path / "foreign.zarr"
    zarr.open_group(foreign, mode="w", zarr_format=3)
    with pytest.raises(StoreError, match="not written by hts_mlff"):
        CampaignStore(foreign).check_readable()


def test_resume_jobs_come_from_the_stored_manifest(tmp_path):
    loaded, plan, store = _prepared(tmp_path)
    jobs = pending_jobs(loaded, plan, store, threads=1)
    assert [j.slot_start for j in jobs] == [p.slot_start for p in plan.packs]
    done = jobs[0].tasks[0]["task_id"]
    store.mark_done(done, {"task_id": done, "pack": 0, "failure_step": -1})
    again = pending_jobs(loaded, plan, store, threads=1)
    # The pack keeps its slots: its first task is done, so the job starts one slot later.
    assert again[0].slot_start == jobs[0].slot_start + 1
    assert done not in {t["task_id"] for j in again for t in j.tasks}

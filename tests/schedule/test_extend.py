"""Extending a store: added sweep values append tasks, everything stored stays byte-identical,
and edits that would change stored results are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.cli import app
from hts_mlff.store import StoreError
from tests.schedule.conftest import write_campaign


def _files(store: Path) -> dict[str, bytes]:
    """Chunk files, completion markers and chunk records (not the metadata a resize rewrites)."""
    out = {}
    for p in sorted(store.rglob("*")):
        rel = p.relative_to(store)
        if p.is_file() and ("c" in rel.parts[1:2] or rel.parts[:2] in (("_hts", "done"), ("_hts", "packs"))):
            out[str(rel)] = p.read_bytes()
    return out


def _by_task(ds) -> dict[str, np.ndarray]:
    return {str(t): ds["total_energy_eV"].values[k] for k, t in enumerate(ds["task_id"].values)}


def test_added_sweep_values_append_and_nothing_stored_changes(tmp_path, dask_client):
    path = write_campaign(tmp_path, name="ext", seeds="[0, 1]")
    loaded = hts_mlff.load_campaign(path)
    hts_mlff.run_campaign(loaded, client=dask_client)
    before = _files(loaded.store_path)
    first = _by_task(hts_mlff.open_campaign(loaded.store_path))
    assert len(first) == 8

    path.write_text(path.read_text().replace("seed: [0, 1]", "seed: [0, 1, 2]").replace("[60, 90]", "[60, 90, 120]"))
    plan = CliRunner().invoke(app, ["plan", str(path)])
    assert plan.exit_code == 0 and "10 new, 8 already done" in plan.output, plan.output
    edited = hts_mlff.load_campaign(path)
    report = hts_mlff.run_campaign(edited, client=dask_client)
    assert report.n_run == 10 and report.n_skipped == 8
    after = _files(loaded.store_path)
    assert {k: v for k, v in after.items() if k in before} == before  # every old byte kept
    ds = hts_mlff.open_campaign(loaded.store_path)
    assert ds.sizes["traj"] == 18 and set(ds["status"].values) == {"done"}
    assert np.isfinite(ds["total_energy_eV"].values).all()
    assert hts_mlff.store.CampaignStore(loaded.store_path).attrs()["extensions"][0]["tasks"] == 10

    # the 18 tasks run at once into a new store (other packs) give the same numbers, task by task
    (tmp_path / "fresh").mkdir()
    fresh = tmp_path / "fresh" / "ext.yaml"
    fresh.write_text(path.read_text())
    hts_mlff.run_campaign(hts_mlff.load_campaign(fresh), client=dask_client)
    extended, direct = _by_task(ds), _by_task(hts_mlff.open_campaign(tmp_path / "fresh" / "t.zarr"))
    assert extended.keys() == direct.keys()
    for task_id, values in direct.items():
        np.testing.assert_array_equal(extended[task_id], values)

    # removing sweep values hides nothing and runs nothing
    path.write_text(path.read_text().replace("seed: [0, 1, 2]", "seed: [0]"))
    report = hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    assert report.n_run == 0
    assert hts_mlff.open_campaign(loaded.store_path).sizes["traj"] == 18


def test_an_edit_that_changes_stored_results_is_refused_by_name(tmp_path, dask_client):
    path = write_campaign(tmp_path, name="ref", seeds="[0]")
    loaded = hts_mlff.load_campaign(path)
    hts_mlff.run_campaign(loaded, client=dask_client)
    manifest = (loaded.store_path / "_hts" / "tasks.json").read_bytes()
    text = path.read_text()
    path.write_text(text.replace("production_steps: 60", "production_steps: 80"))
    with pytest.raises(StoreError, match=r"protocol\.production_steps \(60 → 80\).*new 'store' path"):
        hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    plan = CliRunner().invoke(app, ["plan", str(path)])
    assert "run` will refuse" in plan.output and "production_steps" in plan.output
    path.write_text(text.replace("epsilon_eV: 0.010327", "epsilon_eV: 0.0105"))
    with pytest.raises(StoreError, match=r"forcefields\.lj\.epsilon_eV"):
        hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    assert "repeat: [3, 3, 3]\n  ar107" in text
    path.write_text(text.replace("repeat: [3, 3, 3]\n  ar107", "repeat: [3, 3, 4]\n  ar107"))
    with pytest.raises(StoreError, match=r"systems\.ar108\.repeat"):
        hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    bigger = "  big:\n    kind: fcc\n    element: Ar\n    lattice_A: 5.71\n    repeat: [4, 4, 4]\n  ar107"
    path.write_text(text.replace("  ar107", bigger, 1))
    with pytest.raises(StoreError, match=r"a system of 256 atoms \(the store's atom axis holds 108\)"):
        hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    assert (loaded.store_path / "_hts" / "tasks.json").read_bytes() == manifest  # nothing modified


def test_an_extension_killed_before_its_manifest_is_redone_identically(tmp_path, dask_client, monkeypatch):
    import json
    import shutil

    import hts_mlff.schedule.extend as extend

    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    path = write_campaign(first, name="kill", seeds="[0]")
    hts_mlff.run_campaign(hts_mlff.load_campaign(path), client=dask_client)
    shutil.copytree(first, second)
    for folder in (first, second):
        p = folder / "kill.yaml"
        p.write_text(p.read_text().replace("seed: [0]", "seed: [0, 1]"))

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the coordinator dies after resizing, before the manifest lands

    monkeypatch.setattr(extend, "atomic_write_text", killed)
    with pytest.raises(KeyboardInterrupt):
        hts_mlff.run_campaign(hts_mlff.load_campaign(first / "kill.yaml"), client=dask_client)
    monkeypatch.undo()
    for folder in (first, second):
        report = hts_mlff.run_campaign(hts_mlff.load_campaign(folder / "kill.yaml"), client=dask_client)
        assert report.n_run == 4
    chunks = [{k: v for k, v in _files(f / "t.zarr").items() if "/c/" in k} for f in (first, second)]
    assert chunks[0] == chunks[1]
    manifests = [json.loads((f / "t.zarr" / "_hts" / "tasks.json").read_text()) for f in (first, second)]
    assert manifests[0] == manifests[1]

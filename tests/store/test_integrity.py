"""Damage to a finished store is detected (status, verify), never silent, and a run restores it exactly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hts_mlff
from hts_mlff.cli import app
from hts_mlff.store import CampaignStore, StoreError
from hts_mlff.store.integrity import verify
from tests.schedule.conftest import write_campaign

runner = CliRunner()


def _data_files(store: Path) -> dict[str, bytes]:
    """Every file of the arrays (chunks and array metadata), not the bookkeeping or root metadata."""
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in sorted(store.rglob("*"))
        if p.is_file() and not p.relative_to(store).parts[0].startswith("_") and p.parent != store
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory, dask_client):
    """A finished campaign (8 tasks in 4 packs) and a pristine copy of its store."""
    folder = tmp_path_factory.mktemp("integrity")
    loaded = hts_mlff.load_campaign(write_campaign(folder))
    hts_mlff.run_campaign(loaded, client=dask_client)
    pristine = folder / "pristine.zarr"
    shutil.copytree(loaded.store_path, pristine)
    return loaded, pristine


@pytest.fixture
def store(finished):
    loaded, pristine = finished
    shutil.rmtree(loaded.store_path)
    shutil.copytree(pristine, loaded.store_path)
    return loaded, pristine


def _chunk(store_path: Path, array: str) -> Path:
    return sorted(p for p in (store_path / array / "c").rglob("*") if p.is_file())[0]


def _restored(loaded, pristine, dask_client) -> None:
    report = hts_mlff.run_campaign(loaded, client=dask_client)
    assert report.n_run > 0
    assert _data_files(loaded.store_path) == _data_files(pristine)
    assert verify(CampaignStore(loaded.store_path)).ok
    result = runner.invoke(app, ["verify", str(loaded.store_path)])
    assert result.exit_code == 0 and "8 done" in result.output and "0 damaged" in result.output, result.output


@pytest.mark.parametrize("damage", ["delete_chunk", "delete_array", "garbage_same_size"])
def test_damage_is_found_then_a_run_restores_the_store_exactly(store, dask_client, damage):
    loaded, pristine = store
    path = loaded.store_path
    chunk = _chunk(path, "total_energy_eV")
    if damage == "delete_chunk":
        chunk.unlink()
    elif damage == "delete_array":
        shutil.rmtree(path / "positions")
    else:
        chunk.write_bytes(bytes(255 - b for b in chunk.read_bytes()))
    status = runner.invoke(app, ["status", str(path)])
    assert status.exit_code == 0, status.output
    if damage == "garbage_same_size":
        assert "0 damaged" in status.output  # sizes only: the content check is verify's
    else:
        assert "0 damaged" not in status.output and "damaged pack" in status.output, status.output
    checked = runner.invoke(app, ["verify", str(path)])
    assert checked.exit_code == 1, checked.output
    assert "damaged pack" in checked.output and "hts-mlff run" in checked.output
    if damage != "delete_array":  # the reader masks what it cannot trust
        ds = hts_mlff.open_campaign(path)
        assert (ds["status"].values == "damaged").any() or damage == "garbage_same_size"
    _restored(loaded, pristine, dask_client)


def test_a_deleted_array_is_named_when_the_store_is_opened(store):
    loaded, _ = store
    shutil.rmtree(loaded.store_path / "positions")
    with pytest.warns(UserWarning, match=r"arrays \['positions'\] are gone"):
        ds = hts_mlff.open_campaign(loaded.store_path)
    assert set(ds["status"].values) == {"damaged"} and "positions" in ds.attrs["missing_arrays"]


@pytest.mark.parametrize("content", ['{"task_id": "x", "pa', "[]", '{"pack": "zero"}'])
def test_a_malformed_marker_is_a_warning_and_the_task_runs_again(store, dask_client, content):
    loaded, pristine = store
    marker = sorted((loaded.store_path / "_hts" / "done").glob("*.json"))[3]
    marker.write_text(content)
    status = runner.invoke(app, ["status", str(loaded.store_path)])
    assert status.exit_code == 0 and "Traceback" not in status.output, status.output
    assert "7 done" in status.output and "1 missing" in status.output and "malformed completion marker" in status.output
    assert (hts_mlff.open_campaign(loaded.store_path)["status"].values == "missing").sum() == 1
    _restored(loaded, pristine, dask_client)


def test_a_malformed_manifest_is_a_clear_error(store):
    loaded, _ = store
    manifest = loaded.store_path / "_hts" / "tasks.json"
    for text in ("[]", '{"columns": {"task_id": [1, 2], "slot": [0], "pack": [0]}}', "{trunc"):
        manifest.write_text(text)
        with pytest.raises(StoreError, match=r"tasks\.json"):
            hts_mlff.open_campaign(loaded.store_path)
        result = runner.invoke(app, ["status", str(loaded.store_path)])
        assert result.exit_code == 2 and "tasks.json" in result.output and "Traceback" not in result.output


def test_each_pack_records_its_chunks(store):
    loaded, _ = store
    records = sorted((loaded.store_path / "_hts" / "packs").glob("pack-*.json"))
    assert len(records) == len(set(CampaignStore(loaded.store_path).manifest()["columns"]["pack"])) > 1
    chunks = json.loads(records[0].read_text())["chunks"]
    assert any(key.startswith("total_energy_eV/c/") for key in chunks)
    assert all(v is None or (isinstance(v[0], int) and len(v[1]) == 32) for v in chunks.values())

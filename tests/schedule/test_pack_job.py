"""A pack interrupted mid-trajectory resumes from its checkpoint in the store."""

from __future__ import annotations

import numpy as np
import torch

import hts_mlff
from hts_mlff.engine.md import RunHooks
from hts_mlff.schedule.pack_job import build_pack_inputs, run_pack_job
from hts_mlff.schedule.runner import pending_jobs, prepare_store
from hts_mlff.tasks import expand
from tests.schedule.conftest import write_campaign


def _prepare(tmp_path, store: str):
    path = write_campaign(tmp_path, name="cp", store=store, steps=80)
    path.write_text(path.read_text().replace("dtype: float64", "dtype: float64\n  checkpoint_every_steps: 50"))
    loaded = hts_mlff.load_campaign(path)
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    store_obj = prepare_store(loaded, plan)
    return loaded, store_obj, pending_jobs(loaded, plan, store_obj, threads=1)


def test_pack_resumes_from_its_checkpoint_and_matches_an_uninterrupted_pack(tmp_path):
    loaded, _, jobs = _prepare(tmp_path, "plain.zarr")
    plain = run_pack_job(jobs[0])
    assert plain["resumed_from_step"] == 0

    loaded2, store2, jobs2 = _prepare(tmp_path, "resumed.zarr")
    job = jobs2[0]
    # Reproduce the checkpoint the worker wrote at step 50 before it was killed, from the
    # worker's own input builder.
    inputs = build_pack_inputs(job)
    assert inputs.resume_from is None
    saved = []
    inputs.run(RunHooks(checkpoint_every_steps=50, on_checkpoint=saved.append))
    assert [s["step"] for s in saved] == [50]
    torch.save({**saved[0], "task_ids": [t["task_id"] for t in job.tasks]}, store2.checkpoint_path(job.pack_index))
    assert build_pack_inputs(job).resume_from["step"] == 50

    summary = run_pack_job(job)
    assert summary["resumed_from_step"] == 50
    assert not store2.checkpoint_path(job.pack_index).exists()  # removed once the pack is written
    a = hts_mlff.open_campaign(loaded.store_path)
    b = hts_mlff.open_campaign(loaded2.store_path)
    n = len(job.tasks)
    for name in ("total_energy_eV", "virial_pressure_bar", "final_positions", "positions"):
        np.testing.assert_array_equal(a[name].values[:n], b[name].values[:n])
    assert np.isfinite(b["total_energy_eV"].values[:n]).all()


def test_a_foreign_or_torn_checkpoint_is_ignored(tmp_path):
    _, store, jobs = _prepare(tmp_path, "torn.zarr")
    job = jobs[0]
    store.checkpoint_path(job.pack_index).write_bytes(b"not a checkpoint")
    assert build_pack_inputs(job).resume_from is None
    # A well-formed checkpoint of other tasks (a pack whose tasks changed) is ignored too.
    foreign = {"step": 50, "task_ids": ["someone-else"] * len(job.tasks)}
    torch.save(foreign, store.checkpoint_path(job.pack_index))
    assert build_pack_inputs(job).resume_from is None
    summary = run_pack_job(job)
    assert summary["resumed_from_step"] == 0 and summary["n_tasks"] == len(job.tasks)
    assert set(store.done_markers()) >= {t["task_id"] for t in job.tasks}

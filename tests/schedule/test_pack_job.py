"""A pack interrupted mid-trajectory resumes from its checkpoint in the store."""

from __future__ import annotations

import numpy as np
import torch

import hts_mlff
from hts_mlff.engine.md import run_md
from hts_mlff.engine.rng import replica_key
from hts_mlff.engine.state import state_from_atoms
from hts_mlff.schedule.pack_job import md_protocol, run_pack_job, vacancy_seed
from hts_mlff.schedule.runner import pending_jobs, prepare_store
from hts_mlff.store import CampaignStore
from hts_mlff.systems import build_system
from hts_mlff.tasks import expand
from tests.conftest import LennardJones
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
    # Reproduce the state the worker had checkpointed at step 50 before it was killed.
    atoms = [
        build_system(
            loaded2.spec.systems[t["system"]],
            base_dir=loaded2.base_dir,
            vacancy_seed=vacancy_seed("cp", t["system"], t["seed"], t["window"]),
        )
        for t in job.tasks
    ]
    state = state_from_atoms(atoms, device=torch.device("cpu"), dtype=torch.float64)
    saved = []
    run_md(
        state,
        LennardJones(0.010327, sigma_A=3.405, cutoff_A=8.5),
        protocol=md_protocol(loaded2.spec),
        temperature_K=torch.tensor([t["temperature_K"] for t in job.tasks], dtype=torch.float64),
        pressure_bar=torch.zeros(len(job.tasks), dtype=torch.float64),
        keys=[replica_key("cp", t["task_id"]) for t in job.tasks],
        checkpoint_every_steps=50,
        on_checkpoint=saved.append,
    )
    torch.save({**saved[0], "task_ids": [t["task_id"] for t in job.tasks]}, store2.checkpoint_path(job.pack_index))

    summary = run_pack_job(job)
    assert summary["resumed_from_step"] == 50
    assert not store2.checkpoint_path(job.pack_index).exists()  # removed once the pack is written
    a = hts_mlff.open_campaign(loaded.store_path)
    b = hts_mlff.open_campaign(loaded2.store_path)
    n = len(job.tasks)
    for name in ("total_energy_eV", "virial_pressure_bar", "final_positions"):
        np.testing.assert_array_equal(a[name].values[:n], b[name].values[:n])


def test_a_foreign_or_torn_checkpoint_is_ignored(tmp_path):
    _, store, jobs = _prepare(tmp_path, "torn.zarr")
    store.checkpoint_path(jobs[0].pack_index).write_bytes(b"not a checkpoint")
    assert run_pack_job(jobs[0])["resumed_from_step"] == 0
    assert isinstance(store, CampaignStore)

"""The on-the-fly MSD observer against the MSD of the stored positions, through a real store."""

from __future__ import annotations

import numpy as np

import hts_mlff
from hts_mlff.schedule.pack_job import run_pack_job
from hts_mlff.schedule.runner import pending_jobs, prepare_store
from hts_mlff.tasks import expand
from tests.schedule.conftest import write_campaign


def test_msd_observer_equals_the_msd_of_the_stored_positions(tmp_path):
    path = write_campaign(tmp_path, name="msd", steps=100)
    text = path.read_text().replace("save_positions_every_samples: 2", "save_positions_every_samples: 1")
    path.write_text(text.replace("sweep:", "analyses: [thermo, msd]\nsweep:"))
    loaded = hts_mlff.load_campaign(path)
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    store = prepare_store(loaded, plan)
    for job in pending_jobs(loaded, plan, store, threads=1):
        run_pack_job(job)
    ds = hts_mlff.open_campaign(store.path)
    assert ds["msd_A2"].dims == ("traj", "time_fs") and ds["msd_A2"].attrs["units"] == "Å^2"
    positions = ds["positions"].values  # (traj, sample, atom, 3), NaN beyond a replica's atoms
    from_positions = np.nanmean(((positions - positions[:, :1]) ** 2).sum(-1), axis=-1)
    np.testing.assert_allclose(ds["msd_A2"].values, from_positions, rtol=1e-12, atol=1e-12)
    assert (ds["msd_A2"].values[:, 0] == 0).all() and (ds["msd_A2"].values[:, -1] > 0).all()

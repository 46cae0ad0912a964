"""The table of stored quantities: a registered observer lands in a store with its declared
dims and units, and every observer produces exactly what the table says it does."""

from __future__ import annotations

import numpy as np
import pytest

import hts_mlff
from hts_mlff.engine.observers import Observer
from hts_mlff.schedule.pack_job import build_pack_inputs, run_pack_job
from hts_mlff.schedule.runner import pending_jobs, prepare_store
from hts_mlff.store import quantities
from hts_mlff.store.quantities import OBSERVERS, QUANTITIES, Quantity, array_specs, observers_for, register_observer
from hts_mlff.tasks import expand
from hts_mlff.units import ACCEL_A_PER_FS2_PER_EV_PER_A_AMU, BOLTZMANN_EV_PER_K
from tests.schedule.conftest import write_campaign


class MaxSpeed(Observer):
    """The largest atomic speed of each replica at every sample (Å/fs)."""

    quantities = ("max_speed_A_per_fs",)

    def start(self, state, *, n_frames):
        self.buffers = {"max_speed_A_per_fs": np.full((state.n_systems, n_frames), np.nan)}
        self._sysidx = state.system_idx.numpy()

    def record(self, state, output, *, frame, alive):
        speed = np.linalg.norm(state.velocities.detach().numpy(), axis=1)
        top = np.full(state.n_systems, -np.inf)
        np.maximum.at(top, self._sysidx, speed)
        self.buffers["max_speed_A_per_fs"][:, frame] = np.where(alive, top, np.nan)


@pytest.fixture
def max_speed_registered():
    """Register MaxSpeed for campaigns named "probe" (the registration is undone afterwards)."""
    snapshot_observers, snapshot_quantities = dict(OBSERVERS), dict(QUANTITIES)
    register_observer(
        "max_speed",
        lambda campaign, systems: MaxSpeed() if campaign.name == "probe" else None,
        Quantity(
            "max_speed_A_per_fs", ("traj", "time_fs"), "float64", np.nan, "largest atomic speed", "max_speed", "Å/fs"
        ),
    )
    yield
    OBSERVERS.clear()
    OBSERVERS.update(snapshot_observers)
    QUANTITIES.clear()
    QUANTITIES.update(snapshot_quantities)


def test_a_registered_observer_appears_in_the_store_with_its_dims_and_units(tmp_path, max_speed_registered):
    loaded = hts_mlff.load_campaign(write_campaign(tmp_path, name="probe"))
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    store = prepare_store(loaded, plan)
    for job in pending_jobs(loaded, plan, store, threads=1):
        run_pack_job(job)
    ds = hts_mlff.open_campaign(store.path)
    speed = ds["max_speed_A_per_fs"]
    assert speed.dims == ("traj", "time_fs") and speed.attrs["units"] == "Å/fs"
    assert np.isfinite(speed.values).all()
    # Physics: the fastest atom is faster than the rms speed sqrt(3 k_B T / m) of the sample.
    mass_amu = 39.948
    rms = np.sqrt(
        3 * BOLTZMANN_EV_PER_K * ds["kinetic_temperature_K"].values / mass_amu * ACCEL_A_PER_FS2_PER_EV_PER_A_AMU
    )
    assert (speed.values > rms).all()
    # The planner's size estimate counts it too (n_frames float64 per task).
    without = plan.estimated_store_bytes
    del OBSERVERS["max_speed"]
    assert without - plan.estimated_store_bytes == len(plan.tasks) * plan.n_frames * 8
    other = hts_mlff.load_campaign(write_campaign(tmp_path / "..", name="other"))
    assert "max_speed" not in observers_for(other.spec)


def _vacancy_campaign(tmp_path):
    path = write_campaign(tmp_path, name="every")
    text = path.read_text().replace(
        "save_positions_every_samples: 2",
        "save_positions_every_samples: 2\n  save_velocities_every_samples: 3\n  save_forces_every_samples: 4",
    )
    text = text.replace("repeat: [3, 3, 3]", "repeat: [2, 2, 8]")  # long along z: room for two phases
    path.write_text(text.replace("sweep:", "analyses: [thermo, vacancy, msd, heat_flux, sed, interface]\nsweep:"))
    return hts_mlff.load_campaign(path)


def test_every_registered_observer_produces_exactly_its_declared_quantities(tmp_path):
    loaded = _vacancy_campaign(tmp_path)
    assert set(observers_for(loaded.spec)) == set(OBSERVERS)  # this campaign switches every one on
    plan = expand(loaded.spec, base_dir=loaded.base_dir)
    store = prepare_store(loaded, plan)
    job = pending_jobs(loaded, plan, store, threads=1)[0]
    inputs = build_pack_inputs(job)
    result = inputs.run()
    specs = array_specs(
        loaded.spec, n_slots=plan.n_slots, chunk_size=plan.chunk_size, n_frames=plan.n_frames, max_atoms=plan.max_atoms
    )
    assert set(result.arrays) == set(specs)  # nothing produced that the table does not declare, and vice versa
    n = len(job.tasks)
    for name, spec in specs.items():
        value = result[name]
        assert value.shape[0] == n, name
        assert value.shape[1:] == spec.shape[1 : value.ndim], name  # padded to the pack's largest replica
        assert np.dtype(value.dtype).kind == np.dtype(spec.quantity.dtype).kind, name
    for entry in OBSERVERS.values():
        assert all(quantities.QUANTITIES[q].producer == entry.key for q in entry.quantities)

"""Failure-driven harvesting: planted frames are picked exactly, the output trains, a checkpoint continues."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hts_mlff.cli import app
from hts_mlff.forcefields import LennardJones, load
from hts_mlff.store.reader import open_campaign
from hts_mlff.training.frames import frames_from_store
from hts_mlff.training.harvest import (
    REASONS,
    HarvestCriteria,
    has_reason,
    is_training_frames,
    reference_rdf_thresholds,
    select_frames,
    write_training_frames,
)
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, batch

SCREENING = """\
name: screening
store: screening.zarr
systems:
  ar108:
    kind: fcc
    element: Ar
    number_density_per_A3: 0.02148
    repeat: [3, 3, 3]
forcefields:
  lj:
    kind: lennard_jones
    epsilon_eV: 0.010327
    sigma_A: 3.405
    cutoff_A: 8.5
  mlff:            # the reference's twin (unshifted energy, same forces): it departs only where a test plants it
    kind: lennard_jones
    epsilon_eV: 0.010327
    sigma_A: 3.405
    cutoff_A: 8.5
    shift: false
  lj_wide:         # σ + 2 %: forces off everywhere
    kind: lennard_jones
    epsilon_eV: 0.010327
    sigma_A: 3.473
    cutoff_A: 8.5
protocol:
  ensemble: nvt
  timestep_fs: 10.78
  equilibration_steps: 100
  production_steps: 400
  sample_every_steps: 20
  save_positions_every_samples: 1
  save_forces_every_samples: 1
sweep:
  temperature_K: [40]
  seed: [0, 1, 2]
execution:
  pack_size: 9
  dtype: float64
cluster:
  kind: local
  dashboard_address: ":0"
"""


@pytest.fixture(scope="module")
def screening_store(tmp_path_factory, dask_client):
    import hts_mlff

    folder = tmp_path_factory.mktemp("screening")
    (folder / "screening.yaml").write_text(SCREENING)
    hts_mlff.run_campaign(hts_mlff.load_campaign(folder / "screening.yaml"), client=dask_client)
    return folder / "screening.zarr"


def _lj() -> LennardJones:
    return LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A, shift=False)


def _lj_forces(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    from ase import Atoms

    atoms = Atoms(numbers=[18] * len(positions), positions=positions, cell=cell, pbc=True)
    return _lj()(batch([atoms])).forces.numpy()


def test_the_planted_frames_and_only_they_are_picked(screening_store):
    ds = open_campaign(screening_store).load()
    index = ds.indexes["traj"]
    mlff_rows = [k for k in range(ds.sizes["traj"]) if index.get_level_values("forcefield")[k] == "mlff"]
    assert len(mlff_rows) == 3
    times = ds["position_time_fs"].values
    dt, equilibration = ds.attrs["timestep_fs"], ds.attrs["equilibration_steps"]
    rng = np.random.default_rng(7)

    # 1. force disagreement: one atom of one frame off by 0.5 eV/Å
    k_force, s_force = mlff_rows[0], 6
    forces = ds["forces"].values
    forces[k_force, s_force, 17] += [0.3, -0.4, 0.0]
    # 2. a guard failure at 12.5 samples into production: frames after it are NaN, the last good
    #    configuration is stored as the final positions
    k_fail = mlff_rows[1]
    failure_step = equilibration + int(12.5 * 20)
    ds["failure_step"].values[k_fail] = failure_step
    ds["failure_reason"].values[k_fail] = 2
    after = times >= (failure_step - equilibration) * dt
    ds["positions"].values[k_fail, after] = np.nan
    ds["forces"].values[k_fail, after] = np.nan
    last_before = int(np.flatnonzero(~after)[-1])
    ds["final_positions"].values[k_fail] = ds["positions"].values[k_fail, last_before] + 0.01
    # 3. a structure outlier: one frame rattled by 0.5 Å, its stored forces those of the reference
    k_struct, s_struct = mlff_rows[2], 9
    rattled = ds["positions"].values[k_struct, s_struct] + rng.normal(0, 0.5, (108, 3))
    ds["positions"].values[k_struct, s_struct] = rattled
    ds["forces"].values[k_struct, s_struct] = _lj_forces(rattled, ds["cells"].values[k_struct, s_struct])

    frames = select_frames(
        ds,
        reference="lj",
        reference_forcefield=_lj(),
        criteria=HarvestCriteria(frames_before_failure=2, force_error_eV_per_A=0.1, structure_z=5.0),
        forcefields=["mlff"],
    )
    picked = {
        (str(frames["task_id"].values[j]), float(frames["time_fs"].values[j]), int(frames["reason"].values[j]))
        for j in range(frames.sizes["frame"])
    }
    task = ds["task_id"].values
    bit = {r: 1 << k for k, r in enumerate(REASONS)}
    failure_time = (failure_step - equilibration) * dt
    expected = {
        (task[k_force], times[s_force], bit["force_disagreement"]),
        (task[k_fail], times[last_before - 1], bit["before_failure"]),
        (task[k_fail], times[last_before], bit["before_failure"]),
        (task[k_fail], failure_time, bit["last_good_configuration"]),
        (task[k_struct], times[s_struct], bit["structure_outlier"]),
    }
    assert picked == expected
    assert frames.attrs["frames_scanned"] == 3 * len(times) - int(after.sum()) + 1

    # every picked frame is labelled with the reference's forces of its own positions
    for j in range(frames.sizes["frame"]):
        np.testing.assert_allclose(
            frames["forces"].values[j], _lj_forces(frames["positions"].values[j], frames["cells"].values[j]), atol=1e-10
        )
    j = int(np.flatnonzero(has_reason(frames, "force_disagreement"))[0])
    assert frames["force_error_max_eV_per_A"].values[j] == pytest.approx(0.5, rel=1e-6)
    j = int(np.flatnonzero(has_reason(frames, "structure_outlier"))[0])
    assert frames["rdf_distance"].values[j] > frames["rdf_threshold"].values[j]


def test_criteria_switch_off_and_reject_bad_values(screening_store):
    ds = open_campaign(screening_store)
    off = HarvestCriteria(frames_before_failure=None, force_error_eV_per_A=None, structure_z=None)
    assert select_frames(ds, reference="lj", reference_forcefield=_lj(), criteria=off).sizes["frame"] == 0
    with pytest.raises(ValueError, match="structure_z"):
        HarvestCriteria(structure_z=-1)
    with pytest.raises(ValueError, match="not a force field"):
        select_frames(ds, reference="nope", reference_forcefield=_lj())
    with pytest.raises(ValueError, match="cannot harvest"):
        select_frames(ds, reference="lj", reference_forcefield=_lj(), forcefields=["lj"])


def test_reference_spread_sets_the_structure_threshold():
    rng = np.random.default_rng(0)
    rdfs = 1.0 + rng.normal(0, 0.05, (200, 40))
    mean, threshold, distances = reference_rdf_thresholds(rdfs, z=5.0)
    np.testing.assert_allclose(mean, rdfs.mean(axis=0))
    assert (distances < threshold).all()  # the reference's own frames are inside
    far = np.abs(1.0 + rng.normal(0, 0.10, 40) - mean).mean()
    assert far > threshold  # a frame twice as noisy is outside


def test_harvest_command_writes_a_store_that_trains_from_a_checkpoint(screening_store, tmp_path):
    out = tmp_path / "harvested.zarr"
    runner = CliRunner()
    args = ["harvest", str(screening_store), "-r", "lj", "-f", "lj_wide", "-o", str(out), "--force-error", "0.001"]
    result = runner.invoke(app, [*args, "--structure-z", "0"])
    assert result.exit_code == 0, result.output
    assert is_training_frames(out) and not is_training_frames(screening_store)
    frames = frames_from_store(out)
    n_samples = open_campaign(screening_store).sizes["position_time_fs"]
    assert len(frames) == 3 * n_samples  # σ + 2 %: every frame of every lj_wide trajectory
    for frame in frames[::10]:
        np.testing.assert_allclose(frame.forces, _lj_forces(frame.positions, frame.cell), atol=1e-10)
    # writing over a campaign store is refused
    result = runner.invoke(app, [*args[:-2], "-o", str(screening_store), "--force-error", "0.001"])
    assert result.exit_code == 1 and "not a training-frame store" in result.output

    # a small GNN, then fine-tuned from it on the harvested frames
    base = tmp_path / "base.yaml"
    base.write_text(
        textwrap.dedent(f"""\
        name: base
        output: base.pt
        sources: [{{store: {screening_store}, max_frames: 6}}]
        model: {{hidden: 16, n_layers: 2, n_rbf: 12}}
        optimisation: {{epochs: 1, seed: 0}}
        device: cpu
        """)
    )
    assert runner.invoke(app, ["train", str(base), "-q"]).exit_code == 0
    tuned = tmp_path / "tuned.yaml"
    tuned.write_text(
        textwrap.dedent(f"""\
        name: tuned
        output: tuned.pt
        init_from: base.pt
        sources: [{{store: {out}, max_frames: 6}}]
        optimisation: {{epochs: 1, seed: 0, learning_rate: {{initial: 1.0e-12, final: 1.0e-13}}}}
        device: cpu
        """)
    )
    result = runner.invoke(app, ["train", str(tuned), "-q"])
    assert result.exit_code == 0, result.output
    before, after = load(tmp_path / "base.pt"), load(tmp_path / "tuned.pt")
    assert after.provenance["initial_checkpoint"]["name"] == "base"
    assert after.gnn_config == before.gnn_config  # architecture and force scale carried over
    for name, value in before.module.state_dict().items():  # a vanishing learning rate keeps the weights
        torch.testing.assert_close(after.module.state_dict()[name], value, atol=1e-6, rtol=0)


def test_a_model_section_beside_init_from_is_refused(tmp_path):
    from hts_mlff.spec.load import CampaignError
    from hts_mlff.spec.training import load_training_config

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\noutput: x.pt\ninit_from: missing.pt\nsources: [{store: .}]\nmodel: {hidden: 8}\n")
    with pytest.raises(CampaignError, match="init_from"):
        load_training_config(path)


def test_written_frames_round_trip(screening_store, tmp_path):
    ds = open_campaign(screening_store)
    frames = select_frames(
        ds,
        reference="lj",
        reference_forcefield=_lj(),
        criteria=HarvestCriteria(force_error_eV_per_A=1e-3),
        forcefields=["lj_wide"],
    )
    path = write_training_frames(frames, tmp_path / "h.zarr")
    again = frames_from_store(path)
    assert len(again) == frames.sizes["frame"]
    np.testing.assert_array_equal(again[0].positions, frames["positions"].values[0, : int(frames["n_atoms"].values[0])])
    assert frames_from_store(path, systems=["other"]) == []


def test_parity_in_a_mixed_store_reads_only_the_reference_trajectories(screening_store):
    from hts_mlff.analysis.parity import force_parity

    ds = open_campaign(screening_store)
    only_reference = force_parity(ds, _lj(), max_frames_per_system=12, reference="lj")
    assert float(only_reference["max_abs_error_eV_per_A"].max()) < 1e-9
    mixed = force_parity(ds, _lj(), max_frames_per_system=30)  # lj_wide's own forces count too
    assert float(mixed["max_abs_error_eV_per_A"].max()) > 1e-3
    with pytest.raises(ValueError, match="not a force field"):
        force_parity(ds, _lj(), reference="nope")

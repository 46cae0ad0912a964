"""Training the GNN from a campaign store: frames, loss, the training loop, resume, config errors."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from hts_mlff.cli import app
from hts_mlff.forcefields import GNNConfig, load
from hts_mlff.forcefields.gnn import GNNModule
from hts_mlff.spec.load import CampaignError
from hts_mlff.spec.training import load_training_config
from hts_mlff.training import train
from hts_mlff.training.frames import collate, frame_graph, frames_from_store
from hts_mlff.training.trainer import batch_loss
from tests.conftest import CUTOFF_A, EPSILON_EV, SIGMA_A, batch


def test_stored_frames_carry_the_reference_forces_of_their_positions(frames_store):
    from ase import Atoms

    from hts_mlff.forcefields import LennardJones

    frames = frames_from_store(frames_store)
    assert len(frames) == 2 * 2 * 11  # systems × seeds × samples
    assert {len(f.atomic_numbers) for f in frames} == {107, 108}
    lj = LennardJones(EPSILON_EV, sigma_A=SIGMA_A, cutoff_A=CUTOFF_A, shift=True)
    for frame in frames[::9]:
        atoms = Atoms(numbers=frame.atomic_numbers, positions=frame.positions, cell=frame.cell, pbc=True)
        np.testing.assert_allclose(lj(batch([atoms])).forces.numpy(), frame.forces, atol=1e-12)
    hot = frames_from_store(frames_store, min_temperature_K=80.0)
    assert 0 < len(hot) < len(frames) and all(f.temperature_K >= 80.0 for f in hot)


def test_a_few_training_steps_reduce_the_loss(frames_store):
    frames = frames_from_store(frames_store)[:4]
    config = GNNConfig(hidden=16, n_layers=2, n_rbf=12, force_scale_eV_per_A=0.03)
    graphs = collate([frame_graph(f, species=(18,), cutoff_A=7.5, dtype=torch.float32) for f in frames])

    def losses() -> list[float]:
        torch.manual_seed(0)
        module = GNNModule(config)
        optimiser = torch.optim.Adam(module.parameters(), lr=3e-3)
        out = []
        for _ in range(15):
            loss = batch_loss(module, graphs, scale=0.03, mean_force_penalty=0.01)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            out.append(float(loss.detach()))
        return out

    first, second = losses(), losses()
    assert first == second  # fixed seed → the same run
    assert np.mean(first[-3:]) < 0.9 * first[0]


CONFIG = textwrap.dedent(
    """\
    name: tiny
    output: {output}
    sources:
      - store: {store}
    model:
      hidden: 8
      n_layers: 1
      n_rbf: 8
      conservative: {conservative}
    optimisation:
      seed: 1
      epochs: 2
      frames_per_batch: 4
      learning_rate: {{initial: 1.0e-3, final: 1.0e-4}}
    device: cpu
    """
)


def write_config(folder, store, *, output="tiny.pt", conservative=False, name="train.yaml"):
    path = folder / name
    path.write_text(CONFIG.format(output=output, store=store, conservative=str(conservative).lower()))
    return path


class KilledError(Exception):
    """Stands in for a kill in the middle of training."""


@pytest.mark.parametrize("conservative", [False, True])
def test_training_writes_a_checkpoint_with_provenance_and_resumes_after_a_kill(tmp_path, frames_store, conservative):
    straight = write_config(tmp_path, frames_store, output="straight.pt", conservative=conservative, name="a.yaml")
    config, path, text = load_training_config(straight)
    result = train(config, config_path=path, config_text=text)
    reference = load(result.checkpoint)
    prov = reference.provenance
    assert prov["sources"][0]["spec_hash"] and prov["sources"][0]["n_frames"] == 44
    assert prov["n_train_frames"] + prov["n_validation_frames"] == 44
    assert len(prov["history"]) == 2 and prov["metrics"]["validation_mae_eV_per_A"] > 0
    assert reference.gnn_config.conservative is conservative

    interrupted = write_config(tmp_path, frames_store, output="resumed.pt", conservative=conservative, name="b.yaml")
    config, path, text = load_training_config(interrupted)

    # Checkpoints every epoch: a kill during epoch 2 leaves the state after epoch 1.
    seen = []

    def stop_in_second_epoch(epoch, batch_index, loss):
        seen.append(epoch)
        if epoch == 1:
            raise KilledError

    with pytest.raises(KilledError):
        train(config, config_path=path, config_text=text, on_batch=stop_in_second_epoch)
    assert (tmp_path / "resumed.pt.train-state.pt").exists()
    resumed = train(config, config_path=path, config_text=text)
    assert resumed.resumed_from_epoch == 1 and resumed.epochs_run == 1
    assert not (tmp_path / "resumed.pt.train-state.pt").exists()
    for name, tensor in load(resumed.checkpoint).module.state_dict().items():
        torch.testing.assert_close(tensor, reference.module.state_dict()[name], rtol=0, atol=0)


def test_train_cli_and_config_errors(tmp_path, frames_store):
    path = write_config(tmp_path, frames_store)
    result = CliRunner().invoke(app, ["train", str(path)])  # not a terminal: epoch lines without -q
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.output and "wrote" in result.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        path.read_text().replace("frames_per_batch", "frames_per_bach").replace(str(frames_store), "nope.zarr")
    )
    with pytest.raises(CampaignError) as err:
        load_training_config(bad)
    text = str(err.value)
    assert "bad.yaml:13" in text and "did you mean 'frames_per_batch'" in text
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code == 2 and "frames_per_bach" in result.output

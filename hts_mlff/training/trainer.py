r"""Train the GNN force field on frames from campaign stores (the seeds' §2.3 recipe).

Loss per batch, in normalised force units (forces divided by their RMS ``s`` over the
training set), averaged over the frames of the batch (seeds' eq. 5):

.. math::

    \mathcal L = \frac1N\sum_i \lVert \mathbf f_i - \hat{\mathbf f}_i\rVert_1
               + \lambda \Big\lVert \frac1N\sum_i \hat{\mathbf f}_i \Big\rVert_1

Adam with a learning rate decaying exponentially from ``initial`` to ``final`` over every
optimiser step; the frames are shuffled with the seed and split train/validation once.
The network state, optimiser and history go to ``<output>.train-state.pt`` every
``checkpoint_every_epochs``; a rerun of the same config resumes from it, and the
finished model (weights + config + provenance) goes to ``output``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.data import atomic_numbers as atomic_number_of
from ase.data import chemical_symbols

from hts_mlff import runtime
from hts_mlff.analysis.parity import force_error_metrics
from hts_mlff.forcefields.checkpoint import forcefield_from_payload, read_checkpoint, save_checkpoint
from hts_mlff.forcefields.gnn import GNNConfig, GNNForceField, GNNModule, evaluate
from hts_mlff.spec.training import TrainingConfig
from hts_mlff.store.layout import CampaignStore, package_versions
from hts_mlff.training.frames import Frame, FrameGraph, GraphBatch, collate, frame_graph, frames_from_store


@dataclass
class TrainingResult:
    checkpoint: Path
    metrics: dict[str, Any]
    epochs_run: int
    resumed_from_epoch: int
    wall_s: float


def load_frames(config: TrainingConfig, *, base_dir: Path) -> tuple[list[Frame], list[dict[str, Any]]]:
    """Frames of every source (each capped at ``max_frames``, drawn with the seed) and their provenance."""
    frames: list[Frame] = []
    sources = []
    for k, source in enumerate(config.sources):
        path = (base_dir / source.store).resolve()
        picked = frames_from_store(
            path,
            systems=source.systems,
            min_temperature_K=source.min_temperature_K,
            max_temperature_K=source.max_temperature_K,
        )
        if source.max_frames is not None and len(picked) > source.max_frames:
            rng = np.random.default_rng([config.optimisation.seed, k])
            picked = [picked[i] for i in sorted(rng.choice(len(picked), source.max_frames, replace=False))]
        attrs = _store_attrs(path)
        sources.append(
            {
                "store": str(path),
                "campaign": attrs.get("campaign"),
                "spec_hash": attrs.get("spec_hash"),
                "n_frames": len(picked),
                "selection": source.model_dump(mode="json"),
            }
        )
        frames.extend(picked)
    if len(frames) < 2:
        raise ValueError(f"{len(frames)} frame(s) selected; training needs at least two (one for validation)")
    return frames, sources


def _store_attrs(path: Path) -> dict[str, Any]:
    """Provenance attributes of a campaign store or a training-frame store."""
    from hts_mlff.training.harvest import is_training_frames

    if is_training_frames(path):
        import zarr

        attrs = dict(zarr.open_group(str(path), mode="r").attrs)
        return {"campaign": f"harvested from {attrs.get('source_campaign', '?')}", "spec_hash": None}
    return CampaignStore(path).attrs()


def split_frames(n: int, *, seed: int, validation_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(n * validation_fraction))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def batch_forces(module: GNNModule, batch: GraphBatch, *, create_graph: bool = False) -> torch.Tensor:
    """(n_atoms, 3) predicted forces of a batch of frames, in normalised units."""
    _, forces, _ = evaluate(
        module,
        batch.species_index,
        batch.pair_i,
        batch.pair_j,
        batch.vectors_A,
        system_of_atom=batch.frame_of_atom,
        n_systems=batch.n_frames,
        create_graph=create_graph,
    )
    return forces


def batch_loss(module: GNNModule, batch: GraphBatch, *, scale: float, mean_force_penalty: float) -> torch.Tensor:
    """Seeds' eq. 5 in normalised units, averaged over the frames of the batch."""
    predicted = batch_forces(module, batch, create_graph=True)
    target = batch.forces / scale
    per_atom = (predicted - target).abs().sum(dim=1)
    counts = torch.bincount(batch.frame_of_atom, minlength=batch.n_frames).to(predicted.dtype)
    l1 = torch.zeros(batch.n_frames, dtype=predicted.dtype, device=predicted.device)
    l1 = l1.index_add(0, batch.frame_of_atom, per_atom) / counts
    net = torch.zeros(batch.n_frames, 3, dtype=predicted.dtype, device=predicted.device)
    net = net.index_add(0, batch.frame_of_atom, predicted) / counts[:, None]
    return (l1 + mean_force_penalty * net.abs().sum(dim=1)).mean()


def predict(module: GNNModule, graphs: list[FrameGraph], *, scale: float, device: torch.device) -> np.ndarray:
    """(Σn, 3) predicted forces in eV/Å for a list of frames."""
    out = []
    conservative = module.config.conservative
    for k in range(0, len(graphs), 8):
        batch = collate(graphs[k : k + 8]).to(device)
        with torch.enable_grad() if conservative else torch.no_grad():
            forces = batch_forces(module, batch)
        out.append(forces.detach().cpu().double().numpy() * scale)
    return np.concatenate(out)


def _config_hash(config: TrainingConfig) -> str:
    return hashlib.blake2b(config.model_dump_json().encode(), digest_size=12).hexdigest()


def _species(config: TrainingConfig, frames: list[Frame]) -> tuple[int, ...]:
    if config.model.species:
        unknown = [s for s in config.model.species if s not in atomic_number_of]
        if unknown:
            raise ValueError(f"model.species: unknown chemical symbols {unknown}")
        return tuple(atomic_number_of[s] for s in config.model.species)
    return tuple(sorted({int(z) for f in frames for z in f.atomic_numbers}))


def train(
    config: TrainingConfig,
    *,
    config_path: Path,
    config_text: str = "",
    restart: bool = False,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
    on_batch: Callable[[int, int, float], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
) -> TrainingResult:
    """Train per ``config``; resumes from ``<output>.train-state.pt`` unless ``restart``.

    One run reads in order — frames, split, model, optimiser (or the saved state), epochs,
    checkpoint — and is kept as one function for that reading (≈ 100 lines).

    Args:
        on_epoch: called after every epoch with its record (epoch, train_loss, validation metrics).
        on_batch: called with (epoch, batch index, loss) after every optimiser step.
        on_start: called with (optimiser steps still to run, epoch resumed from) before training.
    """
    started = time.perf_counter()
    base_dir = config_path.parent
    output = (base_dir / config.output).resolve()
    state_path = output.with_name(output.name + ".train-state.pt")
    opt = config.optimisation
    device = runtime.resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)

    frames, sources = load_frames(config, base_dir=base_dir)
    train_idx, val_idx = split_frames(len(frames), seed=opt.seed, validation_fraction=opt.validation_fraction)
    train_forces = np.concatenate([frames[i].forces for i in train_idx])
    scale = float(np.sqrt(np.mean(train_forces**2)))
    initial = _initial_model(config, base_dir=base_dir)
    if initial is None:
        species = _species(config, frames)
        gnn_config = _gnn_config(config, species=species, scale=scale)
    else:  # fine-tuning: the checkpoint's architecture, species and force scale
        gnn_config = initial.gnn_config
        species, scale = gnn_config.species, gnn_config.force_scale_eV_per_A
    graphs = [frame_graph(f, species=species, cutoff_A=gnn_config.cutoff_A, dtype=torch.float32) for f in frames]
    train_graphs = [graphs[i] for i in train_idx]
    val_graphs = [graphs[i] for i in val_idx][: opt.max_validation_frames]
    val_reference = np.concatenate([g.forces.double().numpy() for g in val_graphs])

    torch.manual_seed(opt.seed)
    module = GNNModule(gnn_config).to(device)
    if initial is not None:
        module.load_state_dict({k: v.float() for k, v in initial.module.state_dict().items()})
    optimiser = torch.optim.Adam(module.parameters(), lr=opt.learning_rate.initial)
    steps_per_epoch = math.ceil(len(train_graphs) / opt.frames_per_batch)
    total_steps = steps_per_epoch * opt.epochs
    gamma = (opt.learning_rate.final / opt.learning_rate.initial) ** (1.0 / max(total_steps - 1, 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=gamma)
    history: list[dict[str, Any]] = []
    first_epoch = 0
    config_hash = _config_hash(config)
    if state_path.exists() and not restart:
        module, optimiser, scheduler, first_epoch, history = _resume(
            state_path, config_hash=config_hash, device=device, learning_rate=opt.learning_rate.initial, gamma=gamma
        )
    module.train()
    if on_start is not None:
        on_start(steps_per_epoch * (opt.epochs - first_epoch), first_epoch)

    for epoch in range(first_epoch, opt.epochs):
        order = np.random.default_rng([opt.seed, epoch]).permutation(len(train_graphs))
        losses = []
        for b in range(steps_per_epoch):
            chosen = order[b * opt.frames_per_batch : (b + 1) * opt.frames_per_batch]
            batch = collate([train_graphs[i] for i in chosen]).to(device)
            loss = batch_loss(module, batch, scale=scale, mean_force_penalty=opt.mean_force_penalty)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            scheduler.step()
            losses.append(float(loss.detach()))
            if on_batch is not None:
                on_batch(epoch, b, losses[-1])
        module.eval()
        predicted = predict(module, val_graphs, scale=scale, device=device)
        module.train()
        record = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "learning_rate": float(optimiser.param_groups[0]["lr"]),
            **{f"validation_{k}": v for k, v in force_error_metrics(predicted, val_reference).items()},
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if (epoch + 1) % opt.checkpoint_every_epochs == 0 and epoch + 1 < opt.epochs:
            save_checkpoint(
                state_path,
                GNNForceField(gnn_config, module=_copy_module(module, gnn_config)),
                provenance={"name": config.name, "state": "training"},
                training={
                    "config_hash": config_hash,
                    "epoch": epoch + 1,
                    "optimiser": optimiser.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history_json": json.dumps(history),
                },
            )
    module.eval()
    final = history[-1] if history else {}
    provenance = {
        "name": config.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "training_config": config.model_dump(mode="json"),
        "training_config_text": config_text,
        "training_config_hash": config_hash,
        "sources": sources,
        "initial_checkpoint": None
        if initial is None
        else {
            "path": str((base_dir / config.init_from).resolve()),
            "name": initial.provenance.get("name"),
            "training_config_hash": initial.provenance.get("training_config_hash"),
        },
        "species": [chemical_symbols[z] for z in species],
        "n_train_frames": len(train_graphs),
        "n_validation_frames": len(val_graphs),
        "force_scale_eV_per_A": scale,
        "metrics": {k: v for k, v in final.items() if k.startswith("validation_")},
        "history": history,
        "device": str(device),
        "versions": package_versions(),
    }
    forcefield = GNNForceField(gnn_config, module=_copy_module(module, gnn_config), provenance=provenance)
    save_checkpoint(output, forcefield, provenance=provenance)
    state_path.unlink(missing_ok=True)
    return TrainingResult(
        checkpoint=output,
        metrics=provenance["metrics"],
        epochs_run=opt.epochs - first_epoch,
        resumed_from_epoch=first_epoch,
        wall_s=time.perf_counter() - started,
    )


def _initial_model(config: TrainingConfig, *, base_dir: Path) -> GNNForceField | None:
    """The checkpoint ``init_from`` names (None without one); ValueError if it is not a GNN."""
    if config.init_from is None:
        return None
    from hts_mlff.forcefields.checkpoint import CheckpointError, load

    path = (base_dir / config.init_from).resolve()
    try:
        forcefield = load(path)
    except (CheckpointError, FileNotFoundError) as exc:
        raise ValueError(f"init_from: {exc}") from None
    if not isinstance(forcefield, GNNForceField):
        raise ValueError(f"init_from: {path} is not a GNN checkpoint")
    return forcefield


def _gnn_config(config: TrainingConfig, *, species: tuple[int, ...], scale: float) -> GNNConfig:
    m = config.model
    return GNNConfig(
        species=species,
        hidden=m.hidden,
        n_layers=m.n_layers,
        cutoff_A=m.cutoff_A,
        n_rbf=m.n_rbf,
        rbf_width_A=m.rbf_width_A,
        aggregation_norm=m.aggregation_norm,
        conservative=m.conservative,
        force_scale_eV_per_A=scale,
    )


def _resume(state_path: Path, *, config_hash: str, device: torch.device, learning_rate: float, gamma: float):
    """(module, optimiser, scheduler, epoch, history) from a training state; refuses another config's."""
    payload = read_checkpoint(state_path)
    saved = payload.get("training", {})
    if saved.get("config_hash") != config_hash:
        raise ValueError(f"{state_path}: a training state from a different config; rerun with --restart to discard it")
    module = forcefield_from_payload(payload, source=str(state_path)).module.to(device)
    optimiser = torch.optim.Adam(module.parameters(), lr=learning_rate)
    optimiser.load_state_dict(saved["optimiser"])
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimiser, gamma=gamma)
    scheduler.load_state_dict(saved["scheduler"])
    return module, optimiser, scheduler, int(saved["epoch"]), json.loads(saved["history_json"])


def _copy_module(module: GNNModule, config: GNNConfig) -> GNNModule:
    copy = GNNModule(config)
    copy.load_state_dict({k: v.detach().cpu() for k, v in module.state_dict().items()})
    return copy.eval()

"""Training frames from campaign stores: positions, forces, cell and species per snapshot.

A reference campaign that saves positions and forces at the same interval
(``save_positions_every_samples`` = ``save_forces_every_samples``) is a training set. Each
frame becomes a small graph — species, the half pair list within the cutoff and its pair
vectors — computed once, so an epoch never rebuilds a neighbour list.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hts_mlff.engine.neighbors import system_pairs
from hts_mlff.store.layout import StoreError
from hts_mlff.store.reader import open_campaign


@dataclass
class Frame:
    """One configuration with its reference forces.

    Attributes:
        atomic_numbers: (n,) int. positions: (n, 3) Å. cell: (3, 3) Å. forces: (n, 3) eV/Å.
        temperature_K: kinetic temperature of the sample. label: "store:traj:snapshot".
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    forces: np.ndarray
    temperature_K: float
    label: str


def frames_from_store(
    path: str | Path,
    *,
    systems: list[str] | None = None,
    min_temperature_K: float | None = None,
    max_temperature_K: float | None = None,
) -> list[Frame]:
    """Every completed frame of a store that saved positions and forces together.

    Args:
        path: a campaign store.
        systems: keep only these systems (default: all).
        min_temperature_K, max_temperature_K: keep frames whose kinetic temperature lies
            in this range (e.g. only the liquid part of a heating ramp).

    A training-frame store (harvested frames, :mod:`hts_mlff.training.harvest`) is read too:
    its frames carry the reference's forces.

    Raises:
        StoreError: the store saved no positions, forces or cells at matching samples.
    """
    from hts_mlff.training.harvest import is_training_frames

    if is_training_frames(path):
        return _harvested_frames(
            path, systems=systems, min_temperature_K=min_temperature_K, max_temperature_K=max_temperature_K
        )
    ds = open_campaign(path)
    missing = [name for name in ("positions", "forces", "cells") if name not in ds]
    if missing:
        raise StoreError(
            f"{path}: the campaign saved no {', '.join(missing)}; a training store needs "
            "protocol.save_positions_every_samples and save_forces_every_samples"
        )
    position_times = ds["position_time_fs"].to_numpy()
    force_times = ds["force_time_fs"].to_numpy()
    common = np.intersect1d(position_times, force_times)
    if common.size == 0:
        raise StoreError(f"{path}: positions and forces were never saved at the same sample")
    time_index = {t: k for k, t in enumerate(ds["time_fs"].to_numpy())}
    traj = ds.indexes["traj"]
    frames: list[Frame] = []
    status = ds["status"].to_numpy()
    system_of = traj.get_level_values("system")
    for k in range(ds.sizes["traj"]):
        if status[k] != "done" or (systems is not None and system_of[k] not in systems):
            continue
        one = ds.isel(traj=k)
        n = int(one["n_atoms"])
        z = one["atomic_numbers"].to_numpy()[:n]
        pos = one["positions"].sel(position_time_fs=common).to_numpy()[:, :n]
        cells = one["cells"].sel(position_time_fs=common).to_numpy()
        forces = one["forces"].sel(force_time_fs=common).to_numpy()[:, :n]
        temps = one["kinetic_temperature_K"].to_numpy()[[time_index[t] for t in common]]
        for s, t in enumerate(common):
            if not (np.isfinite(pos[s]).all() and np.isfinite(forces[s]).all()):
                continue
            if min_temperature_K is not None and temps[s] < min_temperature_K:
                continue
            if max_temperature_K is not None and temps[s] > max_temperature_K:
                continue
            frames.append(Frame(z, pos[s], cells[s], forces[s], float(temps[s]), f"{Path(path).name}:{k}:{t:g}fs"))
    return frames


def _harvested_frames(
    path: str | Path,
    *,
    systems: list[str] | None,
    min_temperature_K: float | None,
    max_temperature_K: float | None,
) -> list[Frame]:
    """The frames of a training-frame store (a frame without a temperature passes any range)."""
    from hts_mlff.training.harvest import read_training_frames

    ds = read_training_frames(path)
    frames = []
    for k in range(ds.sizes["frame"]):
        if systems is not None and str(ds["source_system"].values[k]) not in systems:
            continue
        temperature = float(ds["kinetic_temperature_K"].values[k])
        if min_temperature_K is not None and temperature < min_temperature_K:
            continue
        if max_temperature_K is not None and temperature > max_temperature_K:
            continue
        n = int(ds["n_atoms"].values[k])
        frames.append(
            Frame(
                ds["atomic_numbers"].values[k, :n],
                ds["positions"].values[k, :n],
                ds["cells"].values[k],
                ds["forces"].values[k, :n],
                temperature,
                f"{Path(path).name}:{ds['task_id'].values[k]}:{float(ds['time_fs'].values[k]):g}fs",
            )
        )
    return frames


@dataclass
class FrameGraph:
    """A frame as tensors for the GNN (half pair list within the cutoff).

    Attributes:
        species_index: (n,) int64. pair_i, pair_j: (P,) int64. vectors_A: (P, 3).
        forces: (n, 3) eV/Å (reference).
    """

    species_index: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    vectors_A: torch.Tensor
    forces: torch.Tensor

    @property
    def n_atoms(self) -> int:
        return int(self.species_index.shape[0])


def frame_graph(frame: Frame, *, species: tuple[int, ...], cutoff_A: float, dtype: torch.dtype) -> FrameGraph:
    """The graph of one frame; atoms of a species the model does not know raise ValueError."""
    lookup = {z: k for k, z in enumerate(species)}
    unknown = sorted(set(frame.atomic_numbers.tolist()) - set(lookup))
    if unknown:
        raise ValueError(f"{frame.label}: atomic numbers {unknown} are not in the model's species {list(species)}")
    i, j, shifts = system_pairs(frame.positions, cell=frame.cell, cutoff_A=cutoff_A)
    vectors = frame.positions[j] - frame.positions[i] + shifts @ frame.cell
    keep = np.einsum("pk,pk->p", vectors, vectors) < cutoff_A * cutoff_A
    return FrameGraph(
        species_index=torch.as_tensor([lookup[int(z)] for z in frame.atomic_numbers], dtype=torch.int64),
        pair_i=torch.as_tensor(i[keep]),
        pair_j=torch.as_tensor(j[keep]),
        vectors_A=torch.as_tensor(vectors[keep], dtype=dtype),
        forces=torch.as_tensor(frame.forces, dtype=dtype),
    )


@dataclass
class GraphBatch:
    """Several frame graphs as one flat graph (atoms of frame k follow those of frame k−1)."""

    species_index: torch.Tensor
    pair_i: torch.Tensor
    pair_j: torch.Tensor
    vectors_A: torch.Tensor
    forces: torch.Tensor
    frame_of_atom: torch.Tensor
    n_frames: int

    def to(self, device: torch.device) -> GraphBatch:
        return GraphBatch(
            *(t.to(device) for t in (self.species_index, self.pair_i, self.pair_j, self.vectors_A, self.forces)),
            frame_of_atom=self.frame_of_atom.to(device),
            n_frames=self.n_frames,
        )


def collate(graphs: list[FrameGraph]) -> GraphBatch:
    """Concatenate frame graphs, offsetting atom indices."""
    offsets = np.cumsum([0] + [g.n_atoms for g in graphs])
    return GraphBatch(
        species_index=torch.cat([g.species_index for g in graphs]),
        pair_i=torch.cat([g.pair_i + int(o) for g, o in zip(graphs, offsets, strict=False)]),
        pair_j=torch.cat([g.pair_j + int(o) for g, o in zip(graphs, offsets, strict=False)]),
        vectors_A=torch.cat([g.vectors_A for g in graphs]),
        forces=torch.cat([g.forces for g in graphs]),
        frame_of_atom=torch.cat([torch.full((g.n_atoms,), k, dtype=torch.int64) for k, g in enumerate(graphs)]),
        n_frames=len(graphs),
    )

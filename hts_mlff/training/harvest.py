r"""Failure-driven data harvesting: the frames of a screening store where an MLFF departs from
the reference, labelled with the reference's forces, as a store the trainer reads.

A screening campaign runs MLFFs next to a reference force field (argon: Lennard-Jones). Three
criteria pick frames from the MLFF trajectories (every trajectory that is not the reference's):

- **before a failure** — a trajectory the stability guard froze (explosion, fused atoms): its
  last ``frames_before_failure`` saved frames before the failure time, and its last good
  configuration (``final_positions``: the guard restores it when it freezes the replica);
- **force disagreement** — a frame where the largest per-atom force error
  :math:`\max_i \lVert \hat{\mathbf F}_i - \mathbf F_i \rVert` between the MLFF's stored forces
  and the reference's, recomputed on the same positions (a batched post-pass), exceeds
  ``force_error_eV_per_A``;
- **structure outlier** — a frame whose g(r) lies outside the reference's distribution at the
  same state point (system, temperature, pressure). Its distance
  :math:`d = \langle |g(r) - \bar g_\mathrm{ref}(r)| \rangle_r` (the GraNNField RDF MAE, per
  frame) is compared with the reference frames' own distances, each measured leave-one-out
  against the mean of the other reference frames: a frame is an outlier when its robust
  z-score :math:`(d - \mathrm{median}) / (1.4826\,\mathrm{MAD})` exceeds ``structure_z``
  (default 5). A per-frame g(r) of a few hundred atoms is noisy; the reference's spread is
  that noise, so the rule adapts to the system size and the sampling.

Every selected frame is labelled with the reference's forces and written with the reasons it
was picked, its source (trajectory, time) and the metrics, as a *training-frame store*
(a Zarr group, ``kind = "training-frames"``) that :func:`hts_mlff.training.frames.frames_from_store`
reads like a campaign store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from hts_mlff.analysis.parity import predict_frames
from hts_mlff.analysis.structure import _frame_histogram
from hts_mlff.engine.forcefield import ForceField

#: ``kind`` attribute of a training-frame store.
TRAINING_FRAMES_KIND = "training-frames"
#: Reasons a frame is picked, in the order of the ``reason`` bit flags.
REASONS = ("before_failure", "last_good_configuration", "force_disagreement", "structure_outlier")


@dataclass(frozen=True)
class HarvestCriteria:
    """Thresholds of the three criteria (None switches a criterion off).

    Attributes:
        frames_before_failure: saved frames taken before a guard failure (plus the last good
            configuration); 0 takes only the latter, None neither.
        force_error_eV_per_A: bound on the largest per-atom force error (eV/Å).
        structure_z: robust z-score of a frame's RDF distance, against the reference frames'
            distances, beyond which it is an outlier.
        rdf_r_max_A, rdf_bins: the per-frame g(r) histogram.
        max_reference_force_eV_per_A: drop picked frames whose reference forces exceed this
            (fused atoms give forces no model should be trained to reproduce); None keeps all.
    """

    frames_before_failure: int | None = 3
    force_error_eV_per_A: float | None = 0.1
    structure_z: float | None = 5.0
    rdf_r_max_A: float = 8.0
    rdf_bins: int = 80
    max_reference_force_eV_per_A: float | None = None

    def __post_init__(self) -> None:
        if self.frames_before_failure is not None and self.frames_before_failure < 0:
            raise ValueError("frames_before_failure must be ≥ 0")
        if self.force_error_eV_per_A is not None and self.force_error_eV_per_A <= 0:
            raise ValueError("force_error_eV_per_A must be > 0")
        if self.structure_z is not None and self.structure_z <= 0:
            raise ValueError("structure_z must be > 0")


@dataclass
class _Candidate:
    row: int
    time_fs: float
    positions: np.ndarray
    cell: np.ndarray
    mlff_forces: np.ndarray | None
    temperature_K: float
    flags: int = 0


def _rdf_of_frame(positions: np.ndarray, cell: np.ndarray, numbers: np.ndarray, *, edges: np.ndarray) -> np.ndarray:
    counts, norm = _frame_histogram(positions, cell, numbers, pair=None, edges=edges)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    return counts / (norm * shell)


def reference_rdf_thresholds(rdfs: np.ndarray, *, z: float) -> tuple[np.ndarray, float, np.ndarray]:
    """(mean g_ref, distance threshold, leave-one-out distances) of a state point's reference frames.

    Args:
        rdfs: (n_frames, n_bins) per-frame g(r) of the reference, n_frames ≥ 3.
        z: robust z-score of the threshold: median + z · 1.4826 · MAD of the distances.
    """
    n = len(rdfs)
    mean = rdfs.mean(axis=0)
    others = (n * mean[None, :] - rdfs) / (n - 1)
    distances = np.abs(rdfs - others).mean(axis=1)
    median = float(np.median(distances))
    spread = 1.4826 * float(np.median(np.abs(distances - median)))
    return mean, median + z * spread, distances


def _state_point(index: Any, k: int) -> tuple:
    return tuple(index.get_level_values(axis)[k] for axis in ("system", "temperature_K", "pressure_bar"))


def select_frames(
    ds: xr.Dataset,
    *,
    reference: str,
    reference_forcefield: ForceField,
    criteria: HarvestCriteria = HarvestCriteria(),
    forcefields: Sequence[str] | None = None,
    device: str = "cpu",
    dtype: torch.dtype = torch.float64,
    frames_per_call: int = 8,
) -> xr.Dataset:
    """The frames of ``ds`` (an open campaign) that the criteria pick, labelled by the reference.

    Args:
        reference: the reference force field's name in the campaign (its trajectories give
            the structure distribution; they are never harvested).
        reference_forcefield: that force field, built (evaluated on every candidate frame).
        forcefields: harvest only these force fields' trajectories (default: all but the reference).

    Returns:
        Dataset over ``frame`` (and ``atom``, ``xyz``, ``cell_vector``): ``positions`` (Å),
        ``cells`` (Å), ``forces`` (the reference's, eV/Å), ``mlff_forces`` (stored, NaN where not
        saved), ``atomic_numbers``, ``n_atoms``, ``time_fs`` (production time; the failure time
        for a last good configuration), ``kinetic_temperature_K``, ``reason`` (bit flags over
        :data:`REASONS`), ``force_error_max_eV_per_A``, ``rdf_distance`` and ``rdf_threshold``,
        the source trajectory's sweep values and ``task_id``; ``attrs`` hold the criteria and
        the counts of frames scanned and picked per reason.

    Raises:
        ValueError: the store saved no positions, names no such force field, or holds no
            trajectory to harvest.
    """
    for name in ("positions", "cells", "atomic_numbers"):
        if name not in ds:
            raise ValueError(f"the store saved no {name!r}; harvesting needs save_positions_every_samples")
    index = ds.indexes["traj"]
    names = list(dict.fromkeys(index.get_level_values("forcefield")))
    if reference not in names:
        raise ValueError(f"reference {reference!r} is not a force field of this store ({names})")
    wanted = [f for f in names if f != reference] if forcefields is None else list(forcefields)
    unknown = sorted(set(wanted) - set(names))
    if unknown or reference in wanted:
        raise ValueError(
            f"cannot harvest {sorted(set(unknown) | ({reference} & set(wanted)))}: the store holds {names}"
        )
    status = ds["status"].to_numpy()
    forcefield_of = index.get_level_values("forcefield")
    usable = np.isin(status, ("done", "failed"))
    rows = [k for k in range(ds.sizes["traj"]) if usable[k] and forcefield_of[k] in wanted]
    if not rows:
        raise ValueError(f"no finished trajectory of {wanted} in the store")

    timestep = float(ds.attrs.get("timestep_fs", np.nan))
    equilibration = int(ds.attrs.get("equilibration_steps", 0))
    edges = np.linspace(0.0, criteria.rdf_r_max_A, criteria.rdf_bins + 1)
    position_times = ds["position_time_fs"].to_numpy()
    force_times = set(ds["force_time_fs"].to_numpy().tolist()) if "forces" in ds else set()
    thermo_times = {t: k for k, t in enumerate(ds["time_fs"].to_numpy())} if "time_fs" in ds.coords else {}

    # The reference distribution of g(r) per state point.
    thresholds: dict[tuple, tuple[np.ndarray, float]] = {}
    if criteria.structure_z is not None:
        per_point: dict[tuple, list[np.ndarray]] = {}
        for k in range(ds.sizes["traj"]):
            if forcefield_of[k] != reference or status[k] != "done":
                continue
            one = ds.isel(traj=k)
            n = int(one["n_atoms"])
            z = one["atomic_numbers"].to_numpy()[:n]
            pos = one["positions"].to_numpy()[:, :n]
            cells = one["cells"].to_numpy()
            for s in range(len(position_times)):
                if np.isfinite(pos[s]).all() and np.isfinite(cells[s]).all():
                    per_point.setdefault(_state_point(index, k), []).append(
                        _rdf_of_frame(pos[s], cells[s], z, edges=edges)
                    )
        for point, rdfs in per_point.items():
            if len(rdfs) >= 3:
                mean, threshold, _ = reference_rdf_thresholds(np.array(rdfs), z=criteria.structure_z)
                thresholds[point] = (mean, threshold)

    picked: list[dict[str, Any]] = []
    scanned = 0
    counts = dict.fromkeys(REASONS, 0)
    for k in rows:
        one = ds.isel(traj=k)
        n = int(one["n_atoms"])
        z = one["atomic_numbers"].to_numpy()[:n]
        pos = one["positions"].to_numpy()[:, :n]
        cells = one["cells"].to_numpy()
        stored_forces = (
            one["forces"].sel(force_time_fs=[t for t in position_times if t in force_times]).to_numpy()[:, :n]
            if force_times
            else None
        )
        force_row = {t: j for j, t in enumerate(t for t in position_times if t in force_times)}
        temperatures = one["kinetic_temperature_K"].to_numpy() if "kinetic_temperature_K" in one else None
        candidates: list[_Candidate] = []
        for s, t in enumerate(position_times):
            if not (np.isfinite(pos[s]).all() and np.isfinite(cells[s]).all()):
                continue
            mlff = None
            if stored_forces is not None and t in force_row:
                f = stored_forces[force_row[t]]
                mlff = f if np.isfinite(f).all() else None
            temp = float(temperatures[thermo_times[t]]) if temperatures is not None and t in thermo_times else np.nan
            candidates.append(_Candidate(k, float(t), pos[s], cells[s], mlff, temp))

        failure_step = int(one["failure_step"]) if "failure_step" in one else -1
        if failure_step >= 0 and criteria.frames_before_failure is not None:
            failure_time = (failure_step - equilibration) * timestep
            before = [c for c in candidates if c.time_fs < failure_time]
            for c in before[len(before) - criteria.frames_before_failure :] if criteria.frames_before_failure else []:
                c.flags |= 1 << REASONS.index("before_failure")
            if "final_positions" in one:
                last = one["final_positions"].to_numpy()[:n]
                cell = one["final_cell"].to_numpy()
                if np.isfinite(last).all() and np.isfinite(cell).all():
                    candidates.append(
                        _Candidate(
                            k, failure_time, last, cell, None, np.nan, 1 << REASONS.index("last_good_configuration")
                        )
                    )

        scanned += len(candidates)
        point = thresholds.get(_state_point(index, k))
        distances = np.full(len(candidates), np.nan)
        if point is not None:
            mean, threshold = point
            for c_index, c in enumerate(candidates):
                distances[c_index] = np.abs(_rdf_of_frame(c.positions, c.cell, z, edges=edges) - mean).mean()
                if distances[c_index] > threshold:
                    c.flags |= 1 << REASONS.index("structure_outlier")

        # The reference on every candidate: the labels, and the force criterion.
        reference_forces = (
            predict_frames(
                reference_forcefield,
                np.array([c.positions for c in candidates]),
                np.array([c.cell for c in candidates]),
                z,
                device=torch.device(device),
                dtype=dtype,
                frames_per_call=frames_per_call,
            )
            if candidates
            else np.zeros((0, n, 3))
        )
        for c_index, c in enumerate(candidates):
            error = np.nan
            if c.mlff_forces is not None:
                error = float(np.linalg.norm(c.mlff_forces - reference_forces[c_index], axis=1).max())
                if criteria.force_error_eV_per_A is not None and error > criteria.force_error_eV_per_A:
                    c.flags |= 1 << REASONS.index("force_disagreement")
            if not c.flags:
                continue
            largest = float(np.linalg.norm(reference_forces[c_index], axis=1).max())
            limit = criteria.max_reference_force_eV_per_A
            if limit is not None and largest > limit:
                continue
            for bit, reason in enumerate(REASONS):
                counts[reason] += bool(c.flags & (1 << bit))
            picked.append(
                {
                    "row": k,
                    "candidate": c,
                    "numbers": z,
                    "reference_forces": reference_forces[c_index],
                    "force_error": error,
                    "rdf_distance": distances[c_index],
                    "rdf_threshold": point[1] if point is not None else np.nan,
                }
            )
    return _as_dataset(
        ds,
        picked,
        criteria=criteria,
        reference=reference,
        scanned=scanned,
        counts=counts,
        structure_points=len(thresholds),
    )


def _as_dataset(
    ds: xr.Dataset,
    picked: list[dict[str, Any]],
    *,
    criteria: HarvestCriteria,
    reference: str,
    scanned: int,
    counts: dict[str, int],
    structure_points: int,
) -> xr.Dataset:
    n_max = max((len(p["numbers"]) for p in picked), default=0)
    f = len(picked)
    positions = np.full((f, n_max, 3), np.nan)
    forces = np.full((f, n_max, 3), np.nan)
    mlff = np.full((f, n_max, 3), np.nan)
    numbers = np.zeros((f, n_max), dtype=np.int32)
    for j, p in enumerate(picked):
        c, n = p["candidate"], len(p["numbers"])
        positions[j, :n] = c.positions
        forces[j, :n] = p["reference_forces"]
        numbers[j, :n] = p["numbers"]
        if c.mlff_forces is not None:
            mlff[j, :n] = c.mlff_forces
    index = ds.indexes["traj"]
    rows = [p["row"] for p in picked]
    source = {
        name: ("frame", np.asarray(index.get_level_values(name))[rows] if rows else np.array([], dtype=object))
        for name in index.names
    }
    return xr.Dataset(
        {
            "positions": (("frame", "atom", "xyz"), positions, {"units": "Å"}),
            "cells": (
                ("frame", "cell_vector", "xyz"),
                np.array([p["candidate"].cell for p in picked]).reshape(f, 3, 3),
                {"units": "Å"},
            ),
            "forces": (("frame", "atom", "xyz"), forces, {"units": "eV/Å", "long_name": f"forces of {reference}"}),
            "mlff_forces": (
                ("frame", "atom", "xyz"),
                mlff,
                {"units": "eV/Å", "long_name": "stored forces of the MLFF"},
            ),
            "atomic_numbers": (("frame", "atom"), numbers),
            "n_atoms": ("frame", np.array([len(p["numbers"]) for p in picked], dtype=np.int32)),
            "time_fs": ("frame", np.array([p["candidate"].time_fs for p in picked], dtype=float), {"units": "fs"}),
            "kinetic_temperature_K": ("frame", np.array([p["candidate"].temperature_K for p in picked], dtype=float)),
            "reason": (
                "frame",
                np.array([p["candidate"].flags for p in picked], dtype=np.int8),
                {"flag_masks": [1 << b for b in range(len(REASONS))], "flag_meanings": " ".join(REASONS)},
            ),
            "force_error_max_eV_per_A": ("frame", np.array([p["force_error"] for p in picked], dtype=float)),
            "rdf_distance": ("frame", np.array([p["rdf_distance"] for p in picked], dtype=float)),
            "rdf_threshold": ("frame", np.array([p["rdf_threshold"] for p in picked], dtype=float)),
            "task_id": ("frame", np.asarray(ds["task_id"].to_numpy())[rows] if rows else np.array([], dtype=object)),
            **{f"source_{name}": value for name, value in source.items()},
        },
        attrs={
            "kind": TRAINING_FRAMES_KIND,
            "reference": reference,
            "criteria": {k: v for k, v in asdict(criteria).items()},
            "frames_scanned": scanned,
            "frames_picked": len(picked),
            "picked_per_reason": counts,
            "structure_state_points": structure_points,
            "source_campaign": ds.attrs.get("campaign", ""),
        },
    )


def has_reason(frames: xr.Dataset, reason: str) -> np.ndarray:
    """(frame,) bool: the frames picked (also) for ``reason`` (one of :data:`REASONS`)."""
    return (frames["reason"].to_numpy().astype(int) & (1 << REASONS.index(reason))) > 0


def write_training_frames(frames: xr.Dataset, path: str | Path, *, source_store: str = "") -> Path:
    """Write harvested frames as a training-frame store (Zarr); refuses to overwrite another kind."""
    path = Path(path)
    if path.exists() and not is_training_frames(path):
        raise FileExistsError(f"{path} exists and is not a training-frame store; choose another output")
    out = frames.copy()
    out.attrs = {**frames.attrs, "criteria": dict(frames.attrs.get("criteria", {})), "source_store": source_store}
    for name in ("task_id", *[v for v in out.data_vars if v.startswith("source_")]):
        values = out[name].to_numpy()
        if values.dtype.kind in "OUS":  # text as codes into a list (Zarr v3 has no string type yet)
            categories, codes = np.unique(values.astype(str), return_inverse=True)
            out[name] = ("frame", codes.astype(np.int32), {"categories": categories.tolist()})
    out.to_zarr(path, mode="w", consolidated=False)
    return path


def read_training_frames(path: str | Path) -> xr.Dataset:
    """A training-frame store as a Dataset (in memory), its text columns decoded."""
    ds = xr.open_zarr(path, consolidated=False).compute()
    for name in list(ds.data_vars):
        categories = ds[name].attrs.get("categories")
        if categories is not None:
            ds[name] = ("frame", np.asarray(categories, dtype=object)[ds[name].to_numpy()])
    return ds


def is_training_frames(path: str | Path) -> bool:
    """Whether ``path`` is a training-frame store (written by :func:`write_training_frames`)."""
    import zarr

    try:
        return zarr.open_group(str(path), mode="r").attrs.get("kind") == TRAINING_FRAMES_KIND
    except Exception:
        return False

"""One Zarr v3 store per campaign: template, region writes by packs, completion markers.

Layout::

    store.zarr/
      zarr.json                 group attributes: format, campaign, spec hash, provenance
      total_energy_eV/ …        one array per stored quantity (hts_mlff.store.quantities), dims
                                (traj, time_fs), (traj, position_time_fs, atom, xyz), (traj,) …
      time_fs/ …                sample-time coordinates (fs)
      _hts/zarr.json            bookkeeping group (not data; ignored by xarray)
      _hts/tasks.json           task table: id, sweep values, slot, pack
      _hts/done/<task>.json     completion marker, written last and atomically
      _hts/checkpoints/…        mid-pack checkpoints (full integrator state)

The coordinator writes the template once. Pack k owns ``traj`` slots
[k·C, k·C + n_k) where C is the chunk length along ``traj``, so each pack writes whole
chunks of its own and no two writers share a chunk. A task counts as done only when its
marker exists; readers mask the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from hts_mlff.spec.model import FORMAT_VERSION
from hts_mlff.store.quantities import ArraySpec

BOOKKEEPING = "_hts"


class StoreError(RuntimeError):
    """The store cannot be used for this campaign (named path and reason)."""


def spec_hash(spec_json: str) -> str:
    return hashlib.blake2b(spec_json.encode(), digest_size=16).hexdigest()


def package_versions() -> dict[str, str]:
    out = {}
    for name in ("hts_mlff", "torch", "numpy", "zarr", "xarray", "dask", "distributed", "ase", "vesin"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see either nothing or the whole file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class CampaignStore:
    """A campaign's Zarr store on disk."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.bookkeeping = self.path / BOOKKEEPING
        self.done_dir = self.bookkeeping / "done"
        self.checkpoint_dir = self.bookkeeping / "checkpoints"

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        return (self.path / "zarr.json").is_file()

    def attrs(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.path / "zarr.json").read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: not a readable Zarr v3 store ({exc})") from None
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "group":
            raise StoreError(f"{self.path}: not a Zarr v3 group")
        attrs = meta.get("attributes", {})
        if "hts_mlff" not in attrs:
            raise StoreError(f"{self.path}: a Zarr store, but not written by hts_mlff")
        return attrs["hts_mlff"]

    def check_readable(self) -> dict[str, Any]:
        """Return the store's hts_mlff attributes; refuse stores of a newer format."""
        if not self.path.exists():
            raise StoreError(f"{self.path}: no such store")
        attrs = self.attrs()
        version = int(attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise StoreError(
                f"{self.path}: written with store format {version}; this hts_mlff reads up to {FORMAT_VERSION} "
                "(upgrade hts_mlff)"
            )
        return attrs

    def manifest(self) -> dict[str, Any]:
        """The task table; StoreError naming the file when it is missing or malformed."""
        path = self.bookkeeping / "tasks.json"
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: task manifest {path} missing or unreadable ({exc})") from None
        columns = manifest.get("columns") if isinstance(manifest, dict) else None
        required = ("task_id", "slot", "pack")
        if not isinstance(columns, dict) or not all(isinstance(columns.get(c), list) for c in required):
            raise StoreError(f"{self.path}: task manifest {path} is malformed (expected columns {list(required)})")
        if len({len(v) for v in columns.values() if isinstance(v, list)}) != 1:
            raise StoreError(f"{self.path}: task manifest {path} is malformed (columns of unequal length)")
        return manifest

    def read_markers(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """(task id → marker, for every well-formed completion marker; one message per
        malformed one). A malformed marker (torn by a crash, edited) counts as not done."""
        out: dict[str, dict[str, Any]] = {}
        malformed: list[str] = []
        for path in self.malformed_marker_paths(collect=out):
            malformed.append(f"{path}: malformed completion marker (the task counts as not done)")
        return out, malformed

    def malformed_marker_paths(self, *, collect: dict[str, dict[str, Any]] | None = None) -> list[Path]:
        """Completion markers that are not a JSON object with ``pack`` and ``failure_step``
        (the well-formed ones go to ``collect``)."""
        bad: list[Path] = []
        if not self.done_dir.is_dir():
            return bad
        for entry in os.scandir(self.done_dir):
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            try:
                marker = json.loads(Path(entry.path).read_text())
            except (OSError, ValueError):
                marker = None
            well_formed = (
                isinstance(marker, dict)
                and isinstance(marker.get("pack"), int)
                and isinstance(marker.get("failure_step"), int)
            )
            if not well_formed:
                bad.append(Path(entry.path))
            elif collect is not None:
                collect[entry.name[:-5]] = marker
        return bad

    def done_markers(self) -> dict[str, dict[str, Any]]:
        """task id → marker content, for every completed task (malformed markers left out)."""
        return self.read_markers()[0]

    # ------------------------------------------------------------------ writing (coordinator)
    def create(
        self,
        *,
        arrays: dict[str, ArraySpec],
        coords: dict[str, np.ndarray],
        manifest: dict[str, Any],
        provenance: dict[str, Any],
    ) -> None:
        """Write the template (metadata and coordinates) once; no data.

        Args:
            arrays: every data array (:func:`hts_mlff.store.quantities.array_specs`).
            coords: sample-time coordinates (fs) by dim name.
            manifest: the task table (``_hts/tasks.json``).
            provenance: ``campaign`` (name), ``spec_json``, ``campaign_file``, ``campaign_text``
                and anything else to keep (e.g. ``layout`` sizes).
        """
        provenance = dict(provenance)
        spec_json = provenance.pop("spec_json")
        attrs = {
            "hts_mlff": {
                "format_version": FORMAT_VERSION,
                "spec_hash": spec_hash(spec_json),
                "spec": json.loads(spec_json),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": socket.gethostname(),
                "versions": package_versions(),
                **provenance,
            }
        }
        root = zarr.open_group(self.path, mode="w-", zarr_format=3, attributes=attrs)
        for name, spec in arrays.items():
            _create_array(root, name, spec)
        for name, values in coords.items():
            _create_coordinate(root, name, values)
        zarr.open_group(self.bookkeeping, mode="w", zarr_format=3, attributes={"purpose": "hts_mlff bookkeeping"})
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.bookkeeping / "tasks.json", json.dumps(manifest))

    def restore_missing_arrays(self, *, arrays: dict[str, ArraySpec], coords: dict[str, np.ndarray]) -> list[str]:
        """Re-create the template of every array or coordinate whose metadata is gone (its data
        is rewritten by the packs that rerun). Returns their names."""
        root = zarr.open_group(self.path, mode="r+", zarr_format=3, use_consolidated=False)
        restored = []
        for name, spec in arrays.items():
            if not (self.path / name / "zarr.json").is_file():
                _create_array(root, name, spec)
                restored.append(name)
        for name, values in coords.items():
            if not (self.path / name / "zarr.json").is_file():
                _create_coordinate(root, name, values)
                restored.append(name)
        return restored

    def clean_partial_files(self) -> int:
        """Remove temporary files left by a killed writer. Returns how many."""
        removed = 0
        for folder in (self.done_dir, self.checkpoint_dir, self.bookkeeping):
            if folder.is_dir():
                for entry in os.scandir(folder):
                    if entry.name.endswith(".tmp"):
                        os.unlink(entry.path)
                        removed += 1
        return removed

    def consolidate(self) -> None:
        """Consolidate metadata (call when no writer is active)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bookkeeping folders; consolidated metadata is a v3 extension
            zarr.consolidate_metadata(self.path)

    # ------------------------------------------------------------------ writing (workers)
    def write_pack(self, *, slot_start: int, arrays: dict[str, np.ndarray]) -> dict[str, tuple[slice, ...]]:
        """Write one pack's rows; ``arrays`` maps array name → (n_tasks, …) values.

        Returns the region written in each array (for :func:`hts_mlff.store.integrity.record_pack`).
        """
        root = zarr.open_group(self.path, mode="r+", zarr_format=3, use_consolidated=False)
        regions = {}
        for name, values in arrays.items():
            target = root[name]
            n = values.shape[0]
            index = (slice(slot_start, slot_start + n), *tuple(slice(0, s) for s in values.shape[1:]))
            target[index] = values
            regions[name] = index
        return regions

    def mark_done(self, task_id: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.done_dir / f"{task_id}.json", json.dumps(record))

    def checkpoint_path(self, pack_index: int) -> Path:
        return self.checkpoint_dir / f"pack-{pack_index:07d}.pt"


def _create_array(root: zarr.Group, name: str, spec: ArraySpec) -> None:
    q = spec.quantity
    root.create_array(
        name,
        shape=spec.shape,
        chunks=spec.chunks,
        dtype=q.dtype,
        fill_value=q.fill_value,
        dimension_names=list(q.dims),
        attributes=q.attributes(),
        overwrite=True,
    )


def _create_coordinate(root: zarr.Group, name: str, values: np.ndarray) -> None:
    arr = root.create_array(
        name,
        shape=values.shape,
        chunks=values.shape or (1,),
        dtype="float64",
        fill_value=np.nan,
        dimension_names=[name],
        attributes={"units": "fs", "long_name": "time since production start"},
        overwrite=True,
    )
    arr[...] = values

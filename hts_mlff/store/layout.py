"""One Zarr v3 store per campaign: template, region writes by packs, completion markers.

Layout::

    store.zarr/
      zarr.json                 group attributes: format, campaign, spec hash, provenance
      temperature_K/ …          arrays with dims (traj, time_fs[, snapshot, atom, xyz])
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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from hts_mlff.engine.guard import FailureReason
from hts_mlff.engine.observers import THERMO_FIELDS
from hts_mlff.spec.model import FORMAT_VERSION

BOOKKEEPING = "_hts"
SNAPSHOT_CHUNK_BYTES = 64 * 2**20


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


@dataclass
class StoreLayout:
    """Shapes shared by every pack of a store."""

    n_slots: int
    chunk_size: int
    n_frames: int
    max_atoms: int
    n_position_snapshots: int
    n_velocity_snapshots: int
    n_force_snapshots: int = 0
    vacancy_tracking: bool = False


def _snapshot_chunk(layout: StoreLayout, n_snap: int) -> int:
    per_snapshot = max(1, layout.chunk_size * layout.max_atoms * 3 * 8)
    return int(max(1, min(n_snap, SNAPSHOT_CHUNK_BYTES // per_snapshot)))


def array_specs(layout: StoreLayout) -> dict[str, dict[str, Any]]:
    """name → shape, chunks, dtype, fill value, dims and attributes of every data array."""
    c = layout.chunk_size
    specs: dict[str, dict[str, Any]] = {}
    for name, unit in THERMO_FIELDS.items():
        specs[name] = {
            "shape": (layout.n_slots, layout.n_frames),
            "chunks": (c, layout.n_frames),
            "dtype": "float64",
            "fill_value": np.nan,
            "dims": ["traj", "time_fs"],
            "attrs": {"units": unit, "long_name": name.rsplit("_", 1)[0].replace("_", " ")},
        }
    specs["n_atoms"] = {
        "shape": (layout.n_slots,),
        "chunks": (c,),
        "dtype": "int32",
        "fill_value": 0,
        "dims": ["traj"],
        "attrs": {"long_name": "number of atoms"},
    }
    specs["failure_step"] = {
        "shape": (layout.n_slots,),
        "chunks": (c,),
        "dtype": "int64",
        "fill_value": -1,
        "dims": ["traj"],
        "attrs": {"long_name": "step at which the guard froze the replica (-1: never)"},
    }
    specs["failure_reason"] = {
        "shape": (layout.n_slots,),
        "chunks": (c,),
        "dtype": "int8",
        "fill_value": 0,
        "dims": ["traj"],
        "attrs": {
            "long_name": "why the replica was frozen",
            "flag_values": [r.value for r in FailureReason],
            "flag_meanings": " ".join(r.name.lower() for r in FailureReason),
        },
    }
    specs["final_positions"] = {
        "shape": (layout.n_slots, layout.max_atoms, 3),
        "chunks": (c, layout.max_atoms, 3),
        "dtype": "float64",
        "fill_value": np.nan,
        "dims": ["traj", "atom", "xyz"],
        "attrs": {"units": "Å", "long_name": "final unwrapped positions"},
    }
    specs["final_cell"] = {
        "shape": (layout.n_slots, 3, 3),
        "chunks": (c, 3, 3),
        "dtype": "float64",
        "fill_value": np.nan,
        "dims": ["traj", "cell_vector", "xyz"],
        "attrs": {"units": "Å", "long_name": "final cell (rows are vectors)"},
    }
    for name, n_snap, unit, time_dim in (
        ("positions", layout.n_position_snapshots, "Å", "position_time_fs"),
        ("velocities", layout.n_velocity_snapshots, "Å/fs", "velocity_time_fs"),
        ("forces", layout.n_force_snapshots, "eV/Å", "force_time_fs"),
    ):
        if n_snap:
            specs[name] = {
                "shape": (layout.n_slots, n_snap, layout.max_atoms, 3),
                "chunks": (c, _snapshot_chunk(layout, n_snap), layout.max_atoms, 3),
                "dtype": "float64",
                "fill_value": np.nan,
                "dims": ["traj", time_dim, "atom", "xyz"],
                "attrs": {"units": unit, "long_name": f"unwrapped {name}" if name == "positions" else name},
            }
    if layout.vacancy_tracking:
        for name, meaning in (
            ("vacancy_site", "first empty Wigner–Seitz site of the reference lattice (-1: none/not tracked)"),
            ("n_vacant", "number of empty Wigner–Seitz sites"),
        ):
            specs[name] = {
                "shape": (layout.n_slots, layout.n_frames),
                "chunks": (c, layout.n_frames),
                "dtype": "int32",
                "fill_value": -1,
                "dims": ["traj", "time_fs"],
                "attrs": {"long_name": meaning},
            }
    if layout.vacancy_tracking:
        specs["vacancy_jumps"] = {
            "shape": (layout.n_slots,),
            "chunks": (c,),
            "dtype": "int32",
            "fill_value": -1,
            "dims": ["traj"],
            "attrs": {"long_name": "vacancy jumps (changes of the vacant site, up to any loss of the lattice)"},
        }
        specs["first_vacancy_jump_fs"] = {
            "shape": (layout.n_slots,),
            "chunks": (c,),
            "dtype": "float64",
            "fill_value": np.nan,
            "dims": ["traj"],
            "attrs": {"units": "fs", "long_name": "time of the first vacancy jump (NaN: none)"},
        }
    specs["atomic_numbers"] = {
        "shape": (layout.n_slots, layout.max_atoms),
        "chunks": (c, layout.max_atoms),
        "dtype": "int32",
        "fill_value": 0,
        "dims": ["traj", "atom"],
        "attrs": {"long_name": "atomic number (0: no atom)"},
    }
    if layout.n_position_snapshots:
        n_snap = layout.n_position_snapshots
        specs["cells"] = {
            "shape": (layout.n_slots, n_snap, 3, 3),
            "chunks": (c, n_snap, 3, 3),
            "dtype": "float64",
            "fill_value": np.nan,
            "dims": ["traj", "position_time_fs", "cell_vector", "xyz"],
            "attrs": {"units": "Å", "long_name": "cell at the position snapshots (rows are vectors)"},
        }
    return specs


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
        try:
            return json.loads((self.bookkeeping / "tasks.json").read_text())
        except (OSError, ValueError) as exc:
            raise StoreError(f"{self.path}: task manifest missing or unreadable ({exc})") from None

    def done_markers(self) -> dict[str, dict[str, Any]]:
        """task id → marker content, for every completed task."""
        out = {}
        if not self.done_dir.is_dir():
            return out
        for entry in os.scandir(self.done_dir):
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                try:
                    out[entry.name[:-5]] = json.loads(Path(entry.path).read_text())
                except ValueError:
                    continue  # torn marker from a crash: the task counts as not done
        return out

    # ------------------------------------------------------------------ writing (coordinator)
    def create(
        self,
        *,
        layout: StoreLayout,
        campaign_name: str,
        campaign_file: str,
        campaign_text: str,
        spec_json: str,
        manifest: dict[str, Any],
        time_fs: np.ndarray,
        snapshot_times: dict[str, np.ndarray],
    ) -> None:
        """Write the template (metadata and coordinates) once; no data."""
        attrs = {
            "hts_mlff": {
                "format_version": FORMAT_VERSION,
                "campaign": campaign_name,
                "spec_hash": spec_hash(spec_json),
                "campaign_file": campaign_file,
                "campaign_text": campaign_text,
                "spec": json.loads(spec_json),
                "layout": vars(layout),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "host": socket.gethostname(),
                "versions": package_versions(),
            }
        }
        root = zarr.open_group(self.path, mode="w-", zarr_format=3, attributes=attrs)
        for name, spec in array_specs(layout).items():
            root.create_array(
                name,
                shape=spec["shape"],
                chunks=spec["chunks"],
                dtype=spec["dtype"],
                fill_value=spec["fill_value"],
                dimension_names=spec["dims"],
                attributes=spec["attrs"],
            )
        coords = {"time_fs": time_fs, **snapshot_times}
        for name, values in coords.items():
            arr = root.create_array(
                name,
                shape=values.shape,
                chunks=values.shape or (1,),
                dtype="float64",
                fill_value=np.nan,
                dimension_names=[name],
                attributes={"units": "fs", "long_name": "time since production start"},
            )
            arr[...] = values
        zarr.open_group(self.bookkeeping, mode="w", zarr_format=3, attributes={"purpose": "hts_mlff bookkeeping"})
        self.done_dir.mkdir(parents=True, exist_ok=True)
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.bookkeeping / "tasks.json", json.dumps(manifest))

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
    def write_pack(self, *, slot_start: int, arrays: dict[str, np.ndarray]) -> None:
        """Write one pack's rows; ``arrays`` maps array name → (n_tasks, …) values."""
        root = zarr.open_group(self.path, mode="r+", zarr_format=3, use_consolidated=False)
        for name, values in arrays.items():
            target = root[name]
            n = values.shape[0]
            index = (slice(slot_start, slot_start + n), *tuple(slice(0, s) for s in values.shape[1:]))
            target[index] = values

    def mark_done(self, task_id: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.done_dir / f"{task_id}.json", json.dumps(record))

    def checkpoint_path(self, pack_index: int) -> Path:
        return self.checkpoint_dir / f"pack-{pack_index:07d}.pt"

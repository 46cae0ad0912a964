"""Stores that detect their own damage: a checksum of every chunk a pack wrote, checked later.

A pack writes whole chunks of its own (``traj`` slots [k·C, k·C + n)). After writing, and
before its completion markers, it records in ``_hts/packs/pack-<k>.json`` the size and
BLAKE2b digest of each chunk file of its region (``None`` for a chunk Zarr did not write
because it held only fill values). Damage is then found without trusting anything else:

* :func:`quick_check` — each recorded chunk exists with its size (a ``stat`` per chunk;
  ``status`` and ``open_campaign`` run it): a deleted chunk or array is seen at once;
* :func:`verify` — the digests too (reads every chunk once, packs in parallel threads;
  ``hts-mlff verify`` and ``run`` run it): garbage of the right size is seen too.

A damaged pack's tasks count as ``damaged``: masked like missing ones when read, rerun by
``run`` (results are reproducible bit for bit from the task ids). Tasks finished by a version
that wrote no record are ``unverified`` (done, but nothing to check against).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hts_mlff.store.layout import CampaignStore, atomic_write_text

PACKS = "packs"


def pack_record_path(store: CampaignStore, pack_index: int) -> Path:
    return store.bookkeeping / PACKS / f"pack-{pack_index:07d}.json"


def _chunk_keys(store: CampaignStore, name: str, region: tuple[slice, ...]) -> list[str]:
    """Relative paths of the chunk files of array ``name`` that ``region`` touches (Zarr v3
    default encoding: ``name/c/i/j/…``)."""
    meta = json.loads((store.path / name / "zarr.json").read_text())
    chunks = meta["chunk_grid"]["configuration"]["chunk_shape"]
    separator = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/")
    ranges = []
    for s, c in zip(region, chunks, strict=True):
        if s.stop <= s.start:
            return []
        ranges.append(range(s.start // c, (s.stop - 1) // c + 1))
    keys = [[]]
    for r in ranges:
        keys = [[*k, i] for k in keys for i in r]
    if not chunks:  # a scalar array: one chunk named "c"
        return [f"{name}/c"]
    return [f"{name}/c{separator}" + separator.join(map(str, k)) for k in keys]


def _digest(path: Path) -> tuple[int, str] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return len(data), hashlib.blake2b(data, digest_size=16).hexdigest()


def record_pack(
    store: CampaignStore, *, pack_index: int, slot_start: int, regions: dict[str, tuple[slice, ...]]
) -> None:
    """Write the pack's chunk record (call after its arrays are written, before its markers)."""
    chunks: dict[str, list[Any] | None] = {}
    for name, region in regions.items():
        for key in _chunk_keys(store, name, region):
            found = _digest(store.path / key)
            chunks[key] = None if found is None else list(found)
    path = pack_record_path(store, pack_index)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pack": pack_index, "slot_start": slot_start, "chunks": chunks}
    atomic_write_text(path, json.dumps(record, sort_keys=True))


@dataclass
class Integrity:
    """What a check found, by pack index and task id."""

    damaged_packs: dict[int, list[str]] = field(default_factory=dict)  # pack → what is wrong
    damaged_tasks: set[str] = field(default_factory=set)
    unverified_tasks: set[str] = field(default_factory=set)
    malformed: list[str] = field(default_factory=list)  # files that are not what they should be
    arrays: set[str] = field(default_factory=set)  # arrays the records list chunks of

    @property
    def ok(self) -> bool:
        return not self.damaged_packs and not self.malformed


def _load_record(store: CampaignStore, pack_index: int) -> dict[str, Any] | str | None:
    """The pack's record; None when absent; a message when malformed."""
    path = pack_record_path(store, pack_index)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return f"{path}: unreadable chunk record ({exc})"
    if not isinstance(record, dict) or not isinstance(record.get("chunks"), dict):
        return f"{path}: not a chunk record"
    return record


def _check_pack(store: CampaignStore, record: dict[str, Any], *, digests: bool) -> list[str]:
    """What is wrong with one pack's chunks (empty when nothing)."""
    problems = []
    for key, expected in record["chunks"].items():
        path = store.path / key
        if expected is None:
            continue  # a chunk of fill values only: nothing was written
        if not path.is_file():
            problems.append(f"{key}: missing")
            continue
        size, digest = expected
        if os.path.getsize(path) != size:
            problems.append(f"{key}: size changed")
        elif digests and _digest(path) != (size, digest):
            problems.append(f"{key}: content changed")
    return problems


def check_store(store: CampaignStore, *, digests: bool, threads: int | None = None) -> Integrity:
    """Check every pack that has done tasks (``digests``: read and hash every chunk too)."""
    result = Integrity()
    markers, malformed = store.read_markers()
    result.malformed.extend(malformed)
    tasks_of: dict[int, list[str]] = {}
    for task_id, marker in markers.items():
        tasks_of.setdefault(int(marker["pack"]), []).append(task_id)
    records: dict[int, dict[str, Any]] = {}
    for pack_index, task_ids in tasks_of.items():
        record = _load_record(store, pack_index)
        if record is None:
            result.unverified_tasks.update(task_ids)
        elif isinstance(record, str):
            result.malformed.append(record)
            result.damaged_packs[pack_index] = [record]
            result.damaged_tasks.update(task_ids)
        else:
            records[pack_index] = record
            result.arrays.update(key.split("/", 1)[0] for key in record["chunks"])
    n_threads = threads or min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(max_workers=n_threads) as pool:
        found = pool.map(lambda item: (item[0], _check_pack(store, item[1], digests=digests)), records.items())
        for pack_index, problems in found:
            if problems:
                result.damaged_packs[pack_index] = problems
                result.damaged_tasks.update(tasks_of[pack_index])
    return result


def quick_check(store: CampaignStore) -> Integrity:
    """Sizes only (a stat per chunk)."""
    return check_store(store, digests=False)


def verify(store: CampaignStore, *, threads: int | None = None) -> Integrity:
    """Sizes and digests (reads every recorded chunk once)."""
    return check_store(store, digests=True, threads=threads)


def forget_damaged(store: CampaignStore, integrity: Integrity, *, task_ids: Iterable[str] | None = None) -> int:
    """Remove the completion markers (and chunk records) of damaged packs so they run again;
    also every malformed marker. Returns how many markers were removed."""
    removed = 0
    targets = set(integrity.damaged_tasks if task_ids is None else task_ids)
    for task_id in targets:
        path = store.done_dir / f"{task_id}.json"
        if path.exists():
            path.unlink()
            removed += 1
    for pack_index in integrity.damaged_packs:
        pack_record_path(store, pack_index).unlink(missing_ok=True)
    for bad in store.malformed_marker_paths():
        bad.unlink(missing_ok=True)
        removed += 1
    return removed

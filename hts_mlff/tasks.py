"""Expand a campaign into content-addressed tasks and contiguous packs.

A task is one trajectory. Its id hashes the normalised task spec (system, protocol,
sweep values), the force-field checksum and the format version, so an unchanged task keeps
its id across resubmissions and an edited axis only adds new ids. A pack is a contiguous
run of tasks with the same force field and system that the engine integrates in one
batched call. In the store, pack k owns the ``traj`` slots [k·C, k·C + n_k) where C is the
chunk length, so every pack writes whole chunks of its own.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hts_mlff.spec.model import FORMAT_VERSION, SWEEP_AXES, Campaign

AXES = SWEEP_AXES
MAX_AUTO_PACK = 256


@dataclass
class TaskTable:
    """Columns of the expanded tasks, one row per trajectory (all arrays length n_tasks)."""

    task_id: np.ndarray  # str
    forcefield: np.ndarray  # str
    system: np.ndarray  # str
    temperature_K: np.ndarray  # float64
    pressure_bar: np.ndarray  # float64
    seed: np.ndarray  # int64
    window: np.ndarray  # int64
    n_atoms: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.task_id)

    def row(self, i: int) -> dict[str, Any]:
        out = {}
        for name in ("task_id", *AXES, "n_atoms"):
            value = getattr(self, name)[i]
            out[name] = value.item() if isinstance(value, np.generic) else value
        return out


@dataclass
class Pack:
    """Tasks integrated together in one engine call."""

    index: int
    rows: np.ndarray  # indices into the TaskTable
    slot_start: int
    forcefield: str
    system: str

    @property
    def slots(self) -> np.ndarray:
        return self.slot_start + np.arange(len(self.rows))


@dataclass
class Plan:
    """What a campaign expands to."""

    campaign: Campaign
    tasks: TaskTable
    packs: list[Pack]
    chunk_size: int
    n_slots: int
    max_atoms: int
    forcefield_checksums: dict[str, str] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        p = self.campaign.protocol
        return p.equilibration_steps + p.production_steps

    @property
    def atom_steps(self) -> int:
        return int(self.tasks.n_atoms.sum()) * self.total_steps

    @property
    def n_frames(self) -> int:
        p = self.campaign.protocol
        return p.production_steps // p.sample_every_steps + 1

    @property
    def estimated_store_bytes(self) -> int:
        """Uncompressed bytes of the arrays of every task (an upper bound on disk), from the
        table of stored quantities."""
        from hts_mlff.store.quantities import bytes_per_task

        per_task = bytes_per_task(self.campaign, n_frames=self.n_frames, max_atoms=self.max_atoms)
        return per_task * len(self.tasks)


def forcefield_checksum(spec: Any, *, base_dir: Path | None = None) -> str:
    """Checksum of a force-field spec: its normalised JSON, and the bytes of every file the kind
    declares part of its identity (``identity_files``: a checkpoint, a model's weights), whatever
    the field is called. An empty list of files is left out of the JSON (ids of campaigns written
    before the field existed do not change)."""
    payload = spec.model_dump(mode="json")
    for name in type(spec).identity_files:
        if payload.get(name) == []:
            payload.pop(name)
    digest = hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=16)
    if base_dir is not None:
        for file in spec.identity_paths().values():  # in field order (bytes only: ids stay as they were)
            path = base_dir / file
            if path.is_file():
                digest.update(path.read_bytes())
    return digest.hexdigest()


def _axis_values(campaign: Campaign, axis: str) -> list[Any]:
    value = getattr(campaign.sweep, axis)
    if value is None:
        return list(campaign.forcefields if axis == "forcefield" else campaign.systems)
    return list(value)


def _columns(campaign: Campaign) -> dict[str, np.ndarray]:
    """Sweep points as columns, in pack-friendly order (force field, system outermost)."""
    groups: list[tuple[str, ...]] = []
    zipped = {axis for group in campaign.sweep.zip for axis in group}
    for axis in AXES:
        if axis in zipped:
            group = next(tuple(g) for g in campaign.sweep.zip if axis in g)
            if group not in groups:
                groups.append(group)
        else:
            groups.append((axis,))
    lengths = [len(_axis_values(campaign, group[0])) for group in groups]
    index = np.indices(lengths).reshape(len(groups), -1)
    columns: dict[str, np.ndarray] = {}
    for g, group in enumerate(groups):
        for axis in group:
            values = _axis_values(campaign, axis)
            dtype = (
                object if axis in ("forcefield", "system") else (np.int64 if axis in ("seed", "window") else np.float64)
            )
            columns[axis] = np.array(values, dtype=dtype)[index[g]]
    return columns


def task_table(
    campaign: Campaign,
    columns: dict[str, np.ndarray],
    *,
    base_dir: Path,
    checksums: dict[str, str] | None = None,
) -> TaskTable:
    """The tasks of explicit sweep points (columns: forcefield, system, temperature_K,
    pressure_bar, seed, window), with their ids: what the sweep expands to, or tasks added one by
    one (adaptive sampling) — the id depends on the point and what shapes its result, never on
    how it was chosen."""
    from hts_mlff.systems import system_size

    protocol_dump = campaign.protocol.model_dump(mode="json")
    if protocol_dump.get("equilibration_ensemble") is None:  # absent when unset: ids stay stable
        protocol_dump.pop("equilibration_ensemble", None)
    protocol_json = json.dumps(protocol_dump, sort_keys=True)
    if checksums is None:
        checksums = {name: forcefield_checksum(ff, base_dir=base_dir) for name, ff in campaign.forcefields.items()}
    sizes = {name: system_size(spec, base_dir=base_dir) for name, spec in campaign.systems.items()}
    prefixes = {}
    for ff, sys_name in itertools.product(campaign.forcefields, campaign.systems):
        system_dump = campaign.systems[sys_name].model_dump(mode="json")
        lattice_from = system_dump.pop("relax_lattice_with", None)  # absent when unset: ids stay stable
        system_json = json.dumps(system_dump, sort_keys=True)
        if lattice_from is not None:  # the lattice depends on that force field too
            system_json += f"|relax_lattice_with:{lattice_from}:{checksums[lattice_from]}"
        prefixes[ff, sys_name] = (
            f"v{FORMAT_VERSION}|{checksums[ff]}|{system_json}|{protocol_json}|{campaign.execution.dtype}|".encode()
        )
    cols = columns
    blake = hashlib.blake2b
    task_ids = [
        blake(prefixes[ff, sy] + f"{t!r}|{p!r}|{s}|{w}".encode(), digest_size=12).hexdigest()
        for ff, sy, t, p, s, w in zip(
            cols["forcefield"],
            cols["system"],
            np.asarray(cols["temperature_K"], dtype=np.float64).tolist(),
            np.asarray(cols["pressure_bar"], dtype=np.float64).tolist(),
            np.asarray(cols["seed"], dtype=np.int64).tolist(),
            np.asarray(cols["window"], dtype=np.int64).tolist(),
            strict=True,
        )
    ]
    return TaskTable(
        task_id=np.array(task_ids, dtype=object),
        forcefield=np.asarray(cols["forcefield"], dtype=object),
        system=np.asarray(cols["system"], dtype=object),
        temperature_K=np.asarray(cols["temperature_K"], dtype=np.float64),
        pressure_bar=np.asarray(cols["pressure_bar"], dtype=np.float64),
        seed=np.asarray(cols["seed"], dtype=np.int64),
        window=np.asarray(cols["window"], dtype=np.int64),
        n_atoms=np.array([sizes[s] for s in cols["system"]], dtype=np.int64),
    )


def expand(campaign: Campaign, *, base_dir: Path) -> Plan:
    """Expand a campaign into its task table and packs (fast: 10⁵ tasks well under 1 s)."""
    checksums = {name: forcefield_checksum(ff, base_dir=base_dir) for name, ff in campaign.forcefields.items()}
    tasks = task_table(campaign, _columns(campaign), base_dir=base_dir, checksums=checksums)
    n = len(tasks)
    if len(set(tasks.task_id.tolist())) != n:
        raise ValueError("the sweep produces duplicate tasks (repeated values on an axis?)")
    packs, chunk = _make_packs(campaign, tasks)
    return Plan(
        campaign=campaign,
        tasks=tasks,
        packs=packs,
        chunk_size=chunk,
        n_slots=len(packs) * chunk,
        max_atoms=int(tasks.n_atoms.max()) if n else 0,
        forcefield_checksums=checksums,
    )


def auto_pack_size(n_atoms: int, *, max_atoms_per_pack: int) -> int:
    """Memory model: as many replicas as fit ``max_atoms_per_pack`` atoms (1 … 256)."""
    return int(min(MAX_AUTO_PACK, max(1, max_atoms_per_pack // max(n_atoms, 1))))


def _groups_and_sizes(campaign: Campaign, tasks: TaskTable) -> tuple[list[tuple[int, int]], list[int]]:
    """Row ranges of consecutive tasks with one (force field, system), and each one's pack size
    (tasks per pack: the replicas integrated at once × ``execution.tasks_per_slot``)."""
    execution = campaign.execution
    n = len(tasks)
    keys = list(zip(tasks.forcefield, tasks.system, strict=True))
    boundaries = [0] + [i for i in range(1, n) if keys[i] != keys[i - 1]] + [n]
    groups = [(boundaries[g], boundaries[g + 1]) for g in range(len(boundaries) - 1)]
    sizes = []
    for lo, _hi in groups:
        if execution.pack_size == "auto":
            sizes.append(auto_pack_size(int(tasks.n_atoms[lo]), max_atoms_per_pack=execution.max_atoms_per_pack))
        else:
            sizes.append(int(execution.pack_size))
    return groups, [size * execution.tasks_per_slot for size in sizes]


def make_packs(campaign: Campaign, tasks: TaskTable, *, chunk: int, first_index: int = 0) -> list[Pack]:
    """Packs of at most ``chunk`` tasks, numbered from ``first_index``; pack k owns slots
    [k·chunk, k·chunk + n_k) (how a store is laid out, and how it is extended)."""
    if len(tasks) == 0:
        return []
    groups, sizes = _groups_and_sizes(campaign, tasks)
    packs: list[Pack] = []
    for size, (lo, hi) in zip(sizes, groups, strict=True):
        size = min(size, chunk)
        for start in range(lo, hi, size):
            index = first_index + len(packs)
            packs.append(
                Pack(
                    index=index,
                    rows=np.arange(start, min(start + size, hi)),
                    slot_start=index * chunk,
                    forcefield=str(tasks.forcefield[start]),
                    system=str(tasks.system[start]),
                )
            )
    return packs


def _make_packs(campaign: Campaign, tasks: TaskTable) -> tuple[list[Pack], int]:
    if len(tasks) == 0:
        return [], 1
    groups, sizes = _groups_and_sizes(campaign, tasks)
    chunk = max(min(size, hi - lo) for size, (lo, hi) in zip(sizes, groups, strict=True))
    return make_packs(campaign, tasks, chunk=chunk), chunk

"""Extend a store: an edited campaign whose new tasks differ only by added sweep values appends
them; anything that would change the results of tasks already stored is refused by name.

What may change: sweep values (more seeds, windows, temperatures, pressures; new force fields
and systems, sweep axes that list them), and what does not shape results (pack size, cluster,
device, threads). What may not: the protocol, the stored analyses, the dtype, the definition of
a force field or system the store already holds (a force field's checksum includes the bytes
of its checkpoint), or a new system larger than the store's atom axis.

Appending keeps every existing chunk file, completion marker and chunk record as it is: the
arrays are resized along ``traj`` (metadata only), the new tasks get new packs after the
existing ones (same chunk length, so no pack shares a chunk with an old one), the manifest
gains their rows, and the store's spec becomes the edited one (its ``extensions`` attribute
lists each extension: when, how many tasks). Removed sweep values hide nothing: the store keeps
and shows every task it holds.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import zarr

from hts_mlff.spec.model import Campaign
from hts_mlff.store.layout import CampaignStore, StoreError, atomic_write_text, spec_hash
from hts_mlff.tasks import Pack, Plan, TaskTable, forcefield_checksum, make_packs

#: Top-level campaign sections whose change alters the results of stored tasks.
RESULT_SECTIONS = ("protocol", "analyses")


def _differences(old: Any, new: Any, path: str) -> list[str]:
    """Dotted paths where two JSON values differ (with the values when they are short)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new)):
            out += _differences(old.get(key), new.get(key), f"{path}.{key}" if path else str(key))
        return out
    if old == new:
        return []
    shown = f" ({json.dumps(old)} → {json.dumps(new)})" if len(json.dumps(old) + json.dumps(new)) < 80 else ""
    return [path + shown]


def result_changes(stored: Campaign, edited: Campaign, *, base_dir: Any) -> list[str]:
    """What in ``edited`` would change the results of tasks ``stored`` already holds (empty: none)."""
    old, new = stored.model_dump(mode="json"), edited.model_dump(mode="json")
    changes = []
    for section in RESULT_SECTIONS:
        changes += _differences(old.get(section), new.get(section), section)
    changes += _differences(old["execution"]["dtype"], new["execution"]["dtype"], "execution.dtype")
    for kind in ("forcefields", "systems"):
        for name in old[kind]:
            if name not in new[kind]:
                continue  # dropped from the campaign: its stored tasks stay, shown as before
            changes += _differences(old[kind][name], new[kind][name], f"{kind}.{name}")
    for name, spec in stored.forcefields.items():
        if name in edited.forcefields and not changes:
            if forcefield_checksum(spec, base_dir=base_dir) != forcefield_checksum(
                edited.forcefields[name], base_dir=base_dir
            ):
                changes.append(f"forcefields.{name} (its checkpoint file's content)")
    return changes


def new_rows(plan: Plan, store: CampaignStore) -> np.ndarray:
    """Rows of the plan the store has no slot for (from the manifest alone)."""
    known = set(store.manifest()["columns"]["task_id"])
    return np.array([i for i, t in enumerate(plan.tasks.task_id) if t not in known], dtype=np.int64)


def split_tasks(plan: Plan, store: CampaignStore) -> tuple[np.ndarray, int, int]:
    """(rows of the plan the store has no slot for, tasks of the plan already done, tasks the
    store holds that the plan no longer names) — what ``plan`` shows."""
    known = set(store.manifest()["columns"]["task_id"])
    wanted = set(plan.tasks.task_id.tolist())
    return new_rows(plan, store), len(wanted & set(store.done_markers())), len(known - wanted)


def extend_store(store: CampaignStore, plan: Plan, *, stored: Campaign, base_dir: Any, campaign_text: str) -> int:
    """Append the plan's new tasks to ``store`` (see the module docstring); returns how many.

    Raises:
        StoreError: naming what changed, when the edit alters stored results or the layout.
    """
    rows = new_rows(plan, store)
    if len(rows) == 0:
        return 0
    changes = result_changes(stored, plan.campaign, base_dir=base_dir)
    attrs = store.attrs()
    layout = attrs.get("layout", {})
    if not changes and plan.max_atoms > int(layout.get("max_atoms", 0)):
        changes.append(f"a system of {plan.max_atoms} atoms (the store's atom axis holds {layout.get('max_atoms')})")
    if changes:
        raise StoreError(
            f"{store.path}: the edited campaign changes what stored tasks were computed with: "
            + "; ".join(changes[:5])
            + ". Give it a new 'store' path (existing results are left untouched); only added sweep "
            "values (seeds, windows, temperatures, pressures, force fields, systems) can extend a store"
        )
    sub = TaskTable(**{name: getattr(plan.tasks, name)[rows] for name in TaskTable.__dataclass_fields__})
    append_tasks(store, plan.campaign, sub, campaign_text=campaign_text, reason="added sweep values")
    return len(sub)


def append_tasks(
    store: CampaignStore, campaign: Campaign, tasks: TaskTable, *, campaign_text: str, reason: str
) -> list[Pack]:
    """Append ``tasks`` (ids the store does not hold) in new packs after the existing ones:
    arrays resized along ``traj``, manifest rows and packs appended, the store's spec set to
    ``campaign`` and the extension logged. Returns the new packs."""
    attrs = store.attrs()
    layout = attrs.get("layout", {})
    manifest = store.manifest()
    chunk = int(manifest["chunk_size"])
    first_pack = len(manifest["packs"])
    packs = make_packs(campaign, tasks, chunk=chunk, first_index=first_pack)
    n_slots = (first_pack + len(packs)) * chunk
    # Order matters for a kill at any moment: the spec and the arrays' new size first, the
    # manifest (which makes the tasks exist) last and atomically; a rerun then redoes the
    # extension to the same slots.
    root = zarr.open_group(store.path, mode="r+", zarr_format=3, use_consolidated=False)
    spec_json = campaign.model_dump_json()
    hts = dict(attrs)
    log = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tasks": len(tasks), "reason": reason}
    hts.update(
        spec=json.loads(spec_json),
        spec_hash=spec_hash(spec_json),
        campaign_text=campaign_text,
        layout={**layout, "n_slots": n_slots},
        extensions=[*attrs.get("extensions", []), log],
    )
    root.attrs.update({"hts_mlff": hts})
    for _name, array in root.arrays():
        if array.metadata.dimension_names and array.metadata.dimension_names[0] == "traj":
            array.resize((n_slots, *array.shape[1:]))
    columns = manifest["columns"]
    for k in range(len(tasks)):
        for name in ("task_id", "forcefield", "system", "temperature_K", "pressure_bar", "seed", "window", "n_atoms"):
            value = getattr(tasks, name)[k]
            columns[name].append(value.item() if isinstance(value, np.generic) else value)
    slot_of = {}
    for pack in packs:
        for row, slot in zip(pack.rows, pack.slots, strict=True):
            slot_of[int(row)] = (int(slot), pack.index)
    for k in range(len(tasks)):
        columns["slot"].append(slot_of[k][0])
        columns["pack"].append(slot_of[k][1])
    manifest["packs"] += [{"index": p.index, "slot_start": p.slot_start, "n": len(p.rows)} for p in packs]
    atomic_write_text(store.bookkeeping / "tasks.json", json.dumps(manifest))
    return packs

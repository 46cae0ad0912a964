"""Read a campaign store as a lazy xarray Dataset.

The ``traj`` dimension carries a MultiIndex over every sweep axis (force field, system,
temperature, pressure, seed, window), plus ``task_id`` and ``status`` coordinates, so
``ds.sel(temperature_K=60)`` and ``ds.temperature_K.unstack("traj")`` just work. Data of
tasks without a completion marker are masked with the fill value the table of stored
quantities declares (NaN for floats; e.g. −1 for a vacancy site).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.spec.model import SWEEP_AXES as AXES
from hts_mlff.store.integrity import Integrity, quick_check
from hts_mlff.store.layout import CampaignStore, StoreError
from hts_mlff.store.quantities import QUANTITIES

STATUSES = ("done", "failed", "missing", "damaged")


def _task_frame(store: CampaignStore, integrity: Integrity | None = None) -> pd.DataFrame:
    """The task table with each task's status: done / failed (a marker), damaged (a marker, but
    a chunk of its pack is missing or changed size: :func:`~hts_mlff.store.integrity.quick_check`),
    missing (no well-formed marker)."""
    manifest = store.manifest()
    frame = pd.DataFrame(manifest["columns"])
    markers = store.done_markers()
    damaged = (integrity or quick_check(store)).damaged_tasks
    status = np.full(len(frame), "missing", dtype=object)
    device = np.full(len(frame), "", dtype=object)
    for k, task_id in enumerate(frame["task_id"]):
        marker = markers.get(task_id)
        if marker is not None:
            status[k] = "failed" if marker.get("failure_step", -1) >= 0 else "done"
            status[k] = "damaged" if task_id in damaged else status[k]
            device[k] = f"{marker.get('device', '')}@{marker.get('host', '')}"
    frame["status"] = status
    frame["device"] = device
    return frame


def open_campaign(path: str | Path, *, mask_incomplete: bool = True) -> xr.Dataset:
    """Open a campaign store as a lazy (dask-backed) Dataset.

    Args:
        path: the campaign's Zarr store.
        mask_incomplete: replace values of tasks without a completion marker, and of damaged
            tasks (a chunk of theirs missing or resized), by the declared fill value (NaN for
            floating arrays).

    An array that a pack recorded but that is gone from the store is named in a warning and
    in ``ds.attrs["missing_arrays"]``; ``hts-mlff run`` restores it.

    Raises:
        StoreError: the path is not a readable hts_mlff store or is of a newer format.
    """
    store = CampaignStore(path)
    attrs = store.check_readable()
    integrity = quick_check(store)
    frame = _task_frame(store, integrity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr notes the bookkeeping folders it does not own
        try:
            ds = xr.open_zarr(store.path, consolidated=False, chunks={}, zarr_format=3)
        except Exception as exc:
            raise StoreError(f"{store.path}: cannot open arrays ({exc})") from None
    ds = ds.isel(traj=frame["slot"].to_numpy())
    missing_arrays = sorted(integrity.arrays - set(ds.variables))
    if missing_arrays:
        warnings.warn(
            f"{store.path}: arrays {missing_arrays} are gone from the store (their tasks count as damaged; "
            "`hts-mlff run` on the campaign restores them)",
            stacklevel=2,
        )
    if mask_incomplete:
        complete = xr.DataArray(np.isin(frame["status"].to_numpy(), ("done", "failed")), dims="traj")
        for name, var in ds.data_vars.items():
            if "traj" not in var.dims:
                continue
            if np.issubdtype(var.dtype, np.floating):
                ds[name] = var.where(complete)
            elif name in QUANTITIES:
                ds[name] = var.where(complete, QUANTITIES[name].fill_value).astype(var.dtype)
    coords = {axis: ("traj", frame[axis].to_numpy()) for axis in AXES}
    coords["task_id"] = ("traj", frame["task_id"].to_numpy().astype(str))
    coords["status"] = ("traj", frame["status"].to_numpy().astype(str))
    coords["device"] = ("traj", frame["device"].to_numpy().astype(str))
    ds = ds.assign_coords(coords).set_index(traj=list(AXES))
    ds.attrs = {
        "campaign": attrs["campaign"],
        "spec_hash": attrs["spec_hash"],
        "format_version": attrs["format_version"],
        "campaign_file": attrs.get("campaign_file", ""),
        "campaign_text": attrs.get("campaign_text", ""),
        "created": attrs.get("created", ""),
        "versions": str(attrs.get("versions", {})),
        "missing_arrays": ", ".join(missing_arrays),
    }
    spec = attrs.get("spec", {})
    ds.attrs["forcefields_json"] = json.dumps(spec.get("forcefields", {}))
    protocol = spec.get("protocol", {})
    for key in ("timestep_fs", "equilibration_steps", "production_steps", "sample_every_steps"):
        if key in protocol:
            ds.attrs[key] = protocol[key]
    return ds


def status_table(path: str | Path, *, integrity: Integrity | None = None) -> dict[str, pd.DataFrame]:
    """Counts of done / failed / missing / damaged tasks per value of every sweep axis
    (``integrity``: a check already made, e.g. :func:`~hts_mlff.store.integrity.verify`)."""
    store = CampaignStore(path)
    store.check_readable()
    frame = _task_frame(store, integrity)
    out = {}
    for axis in AXES:
        counts = pd.crosstab(frame[axis], frame["status"]).reindex(columns=list(STATUSES), fill_value=0)
        out[axis] = counts
    if frame.empty:
        raise StoreError(f"{store.path}: the store holds no tasks")
    return out

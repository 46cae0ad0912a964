"""Read a campaign store as a lazy xarray Dataset.

The ``traj`` dimension carries a MultiIndex over every sweep axis (force field, system,
temperature, pressure, seed, window), plus ``task_id`` and ``status`` coordinates, so
``ds.sel(temperature_K=60)`` and ``ds.temperature_K.unstack("traj")`` just work. Data of
tasks without a completion marker are masked with the fill value the table of stored
quantities declares (NaN for floats; e.g. −1 for a vacancy site).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from hts_mlff.spec.model import SWEEP_AXES as AXES
from hts_mlff.store.layout import CampaignStore, StoreError
from hts_mlff.store.quantities import QUANTITIES

STATUSES = ("done", "failed", "missing")


def _task_frame(store: CampaignStore) -> pd.DataFrame:
    manifest = store.manifest()
    frame = pd.DataFrame(manifest["columns"])
    markers = store.done_markers()
    status = np.full(len(frame), "missing", dtype=object)
    device = np.full(len(frame), "", dtype=object)
    for k, task_id in enumerate(frame["task_id"]):
        marker = markers.get(task_id)
        if marker is not None:
            status[k] = "failed" if marker.get("failure_step", -1) >= 0 else "done"
            device[k] = f"{marker.get('device', '')}@{marker.get('host', '')}"
    frame["status"] = status
    frame["device"] = device
    return frame


def open_campaign(path: str | Path, *, mask_incomplete: bool = True) -> xr.Dataset:
    """Open a campaign store as a lazy (dask-backed) Dataset.

    Args:
        path: the campaign's Zarr store.
        mask_incomplete: replace values of tasks without a completion marker by the declared
            fill value (NaN for floating arrays).

    Raises:
        StoreError: the path is not a readable hts_mlff store or is of a newer format.
    """
    store = CampaignStore(path)
    attrs = store.check_readable()
    frame = _task_frame(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zarr notes the bookkeeping folders it does not own
        try:
            ds = xr.open_zarr(store.path, consolidated=False, chunks={}, zarr_format=3)
        except Exception as exc:
            raise StoreError(f"{store.path}: cannot open arrays ({exc})") from None
    ds = ds.isel(traj=frame["slot"].to_numpy())
    if mask_incomplete:
        complete = xr.DataArray(frame["status"].to_numpy() != "missing", dims="traj")
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
    }
    protocol = attrs.get("spec", {}).get("protocol", {})
    for key in ("timestep_fs", "equilibration_steps", "production_steps", "sample_every_steps"):
        if key in protocol:
            ds.attrs[key] = protocol[key]
    return ds


def status_table(path: str | Path) -> dict[str, pd.DataFrame]:
    """Counts of done / failed / missing tasks per value of every sweep axis."""
    store = CampaignStore(path)
    store.check_readable()
    frame = _task_frame(store)
    out = {}
    for axis in AXES:
        counts = pd.crosstab(frame[axis], frame["status"]).reindex(columns=list(STATUSES), fill_value=0)
        out[axis] = counts
    if frame.empty:
        raise StoreError(f"{store.path}: the store holds no tasks")
    return out

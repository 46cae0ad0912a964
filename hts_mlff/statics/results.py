"""The result store of a static calculation: one Zarr part per point, resumable, then combined.

A sweep (e.g. force fields × pressures) computes points one by one. Each is written to
``<output>/parts/<label>.zarr`` as soon as it is done, atomically (a temporary folder renamed
into place) and tagged with a hash of everything that shapes it. A rerun — after a crash, a
kill or an edit that adds points — reuses the parts whose hash still matches and recomputes
the rest. The parts are then combined into ``<output>/<name>.zarr``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
import xarray as xr

from hts_mlff import runtime
from hts_mlff.engine.forcefield import ForceField
from hts_mlff.spec.statics import StaticsSweep
from hts_mlff.tasks import forcefield_checksum


class PointFunction(Protocol):
    """Computes one (force field, pressure) point of a sweep."""

    def __call__(
        self,
        config: StaticsSweep,
        forcefield: ForceField,
        *,
        pressure_bar: float,
        device: torch.device,
        lattice_forcefield: ForceField,
    ) -> xr.Dataset: ...


class PointStore:
    """Parts of one calculation under ``output``; the combined result is ``<output>/<name>.zarr``."""

    def __init__(self, output: Path, *, name: str) -> None:
        self.output = Path(output)
        self.name = name
        (self.output / "parts").mkdir(parents=True, exist_ok=True)

    def part_path(self, label: str) -> Path:
        return self.output / "parts" / f"{label}.zarr"

    def read(self, label: str, point_hash: str) -> xr.Dataset | None:
        """The saved point if it exists and was made with the same settings, else None."""
        part = self.part_path(label)
        if not part.exists():
            return None
        try:
            ds = xr.open_zarr(part, consolidated=False).load()
        except (OSError, ValueError, KeyError):
            return None
        return ds if ds.attrs.get("point_hash") == point_hash else None

    def write(self, label: str, ds: xr.Dataset, point_hash: str) -> None:
        """Save one point (replacing an older one of the same label) so that readers see all or nothing."""
        part = self.part_path(label)
        ds = ds.assign_attrs(point_hash=point_hash)
        tmp = part.with_name(part.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        ds.to_zarr(tmp, mode="w", consolidated=False)
        shutil.rmtree(part, ignore_errors=True)
        tmp.rename(part)

    def combine(self, points: list[xr.Dataset], *, attrs: dict) -> xr.Dataset:
        """Combine points (each expanded along the sweep dims) and write ``<name>.zarr``."""
        combined = xr.combine_by_coords(points, combine_attrs="drop")
        combined.attrs = dict(attrs)
        combined.to_zarr(self.output / f"{self.name}.zarr", mode="w", consolidated=False)
        return combined


def sweep_points(
    config: StaticsSweep,
    compute: PointFunction,
    *,
    store: PointStore,
    base_dir: Path,
    on_point: Callable[[str, float, xr.Dataset, bool], None] | None = None,
) -> list[xr.Dataset]:
    """Every (force field, pressure) point of a sweep, computed or reused from ``store``, each
    expanded along ``forcefield`` and ``pressure_bar``. The lattice comes from ``lattice_from``
    (else the force field itself); ``on_point(forcefield, pressure_bar, dataset, reused)``
    follows each point."""
    device = runtime.resolve_device(config.device)
    points = []
    for name, spec in config.forcefields.items():
        lattice_spec = config.forcefields[config.lattice_from or name]
        point_hash = config.point_hash(
            forcefield_checksum(spec, base_dir=base_dir), forcefield_checksum(lattice_spec, base_dir=base_dir)
        )
        for pressure in config.pressure_bar:
            label = f"{name}@{pressure:g}bar"
            ds = store.read(label, point_hash)
            reused = ds is not None
            if ds is None:
                ds = compute(
                    config,
                    runtime.forcefield(spec, base_dir=base_dir),
                    pressure_bar=pressure,
                    device=device,
                    lattice_forcefield=runtime.forcefield(lattice_spec, base_dir=base_dir),
                )
                store.write(label, ds, point_hash)
            if on_point is not None:
                on_point(name, pressure, ds, reused)
            points.append(ds.expand_dims(forcefield=[name], pressure_bar=[pressure]))
    return points

"""What every zero-temperature sweep file shares: force fields × pressures, the lattice source,
device and dtype, a hash per point, and loading with file:line errors.

A sweep config (barrier sweep, phonon sweep) subclasses :class:`StaticsSweep` with its own
crystal and settings sections and says which of them shape a point (:meth:`StaticsSweep.settings`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, ValidationInfo, field_validator

from hts_mlff.spec.load import CampaignError, Problem, parse_yaml_model
from hts_mlff.spec.model import ForceFieldSpec, Strict
from hts_mlff.spec.types import Float


class StaticsSweep(Strict):
    """Force fields × pressures, each point a T = 0 calculation on a crystal at its lattice."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output: str = Field(description="Result folder, relative to this file (combined store, parts/, figures).")
    forcefields: dict[str, ForceFieldSpec] = Field(min_length=1)
    pressure_bar: list[Float] = Field(min_length=1, description="Sweep axis: T = 0 lattice at each pressure.")
    lattice_from: str | None = Field(
        None,
        description="Force field whose T = 0 lattice at each pressure every force field uses (the seeds compare "
        "models at the reference's density); default: each relaxes its own cell, which needs a stress.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float64", "float32"] = "float64"

    @field_validator("pressure_bar")
    @classmethod
    def _distinct_pressures(cls, value: list[float]) -> list[float]:
        if len(set(value)) != len(value):
            raise ValueError("pressure_bar values must be distinct")
        return value

    @field_validator("lattice_from")
    @classmethod
    def _known_forcefield(cls, value: str | None, info: ValidationInfo) -> str | None:
        names = sorted(info.data.get("forcefields") or {})
        if value is not None and value not in names:
            raise ValueError(f"{value!r} is not one of the forcefields {names}")
        return value

    def settings(self) -> dict[str, Any]:
        """The sections that shape every point's result (subclasses add theirs)."""
        return {"dtype": self.dtype}

    def point_hash(self, forcefield_checksum: str, lattice_checksum: str) -> str:
        """Identifies one force field's results: changes when anything that shapes them changes
        (the settings, and the checksums of the force field and of the one that sets the lattice)."""
        payload = {**self.settings(), "forcefield": forcefield_checksum, "lattice": lattice_checksum}
        return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=8).hexdigest()


S = TypeVar("S", bound=StaticsSweep)


def load_statics_config(path: str | Path, model: type[S]) -> tuple[S, Path]:
    """(config, its resolved path); errors name file, line and field (also a missing checkpoint)."""
    p = Path(path).resolve()
    config, lines = parse_yaml_model(p.read_text(), model, file=str(path))
    problems = []
    for name, spec in config.forcefields.items():
        try:
            identity = spec.identity_paths()
        except (ImportError, ValueError) as exc:  # a pretrained name the installed package resolves
            field = spec.identity_files[0]
            line = lines.get(("forcefields", name, field, "__value__"), lines.get(("forcefields", name), 1))
            problems.append(Problem(str(path), line, f"forcefields.{name}.{field}", str(exc).splitlines()[0]))
            continue
        for field_path, file in identity.items():  # checkpoints, weights: every file it declares
            if (p.parent / file).is_file():
                continue
            field, _, index = field_path.partition("[")
            key = ("forcefields", name, field, *([int(index[:-1])] if index else []), "__value__")
            line = lines.get(key, lines.get(("forcefields", name), 1))
            problems.append(
                Problem(str(path), line, f"forcefields.{name}.{field_path}", f"no file at {p.parent / file}")
            )
    if problems:
        raise CampaignError(problems)
    return config, p

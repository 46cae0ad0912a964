"""The barrier-sweep file of ``hts-mlff barrier`` as typed models (unknown keys are errors).

One file: a crystal, its force fields, the pressures to scan, the string settings. Every
(force field, pressure) pair is one vacancy-hop minimum-energy path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hts_mlff.spec.load import CampaignError, Problem, parse_yaml_model
from hts_mlff.spec.model import ForceFieldSpec, GNNSpec, Strict


class HopCrystal(Strict):
    """The perfect FCC supercell whose T = 0 lattice is relaxed at each pressure."""

    element: str = Field(description="Chemical symbol, e.g. Ar.")
    repeat: tuple[PositiveInt, PositiveInt, PositiveInt] = (3, 3, 3)
    guess_lattice_A: PositiveFloat = Field(description="Starting cubic lattice constant for the cell relaxation.")
    vacancy_site: NonNegativeInt = Field(0, description="Site emptied in the start state.")
    target_site: NonNegativeInt | None = Field(None, description="Site of the end state (default: nearest neighbour).")

    @model_validator(mode="after")
    def _sites_in_range(self) -> HopCrystal:
        n_sites = 4 * self.repeat[0] * self.repeat[1] * self.repeat[2]
        for name in ("vacancy_site", "target_site"):
            value = getattr(self, name)
            if value is not None and value >= n_sites:
                raise ValueError(f"{name} {value} out of range: the supercell has {n_sites} sites")
        if self.target_site is not None and self.target_site == self.vacancy_site:
            raise ValueError("target_site must differ from vacancy_site")
        return self


class StringSettings(Strict):
    """Simplified string, FIRE-driven (see docs/science.md)."""

    n_images: int = Field(9, ge=3, description="Images including the end states; odd puts one on a symmetric saddle.")
    fmax_eV_per_A: PositiveFloat = Field(3e-4, description="Stop when max per-atom |F⊥| is below this.")
    endpoint_fmax_eV_per_A: PositiveFloat = Field(1e-4, description="Force tolerance of the relaxed end states.")
    max_iterations: PositiveInt = 3000
    max_step_A: PositiveFloat = Field(0.05, description="Largest move of one atom per iteration.")


class BarrierConfig(Strict):
    """A barrier sweep: vacancy-hop barrier vs pressure for every force field."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    output: str = Field(description="Result folder, relative to this file (barriers.zarr, parts/, figures).")
    crystal: HopCrystal
    forcefields: dict[str, ForceFieldSpec] = Field(min_length=1)
    pressure_bar: list[float] = Field(min_length=1, description="Sweep axis: T = 0 lattice at each pressure.")
    lattice_from: str | None = Field(
        None,
        description="Force field whose T = 0 lattice at each pressure every force field uses (the seeds compare "
        "models at the reference's density); default: each relaxes its own cell, which needs a stress.",
    )
    string: StringSettings = StringSettings()
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

    def point_hash(self, forcefield_checksum: str, lattice_checksum: str) -> str:
        """Identifies one force field's results: changes when anything that shapes them changes
        (the checksums of the force field and of the one that sets the lattice)."""
        payload = {
            "crystal": self.crystal.model_dump(mode="json"),
            "string": self.string.model_dump(mode="json"),
            "forcefield": forcefield_checksum,
            "lattice": lattice_checksum,
            "dtype": self.dtype,
        }
        return hashlib.blake2b(json.dumps(payload, sort_keys=True).encode(), digest_size=8).hexdigest()


def load_barrier_config(path: str | Path) -> tuple[BarrierConfig, Path]:
    """(config, its resolved path); errors name file, line and field."""
    p = Path(path).resolve()
    config, lines = parse_yaml_model(p.read_text(), BarrierConfig, file=str(path))
    problems = []
    for name, spec in config.forcefields.items():
        if isinstance(spec, GNNSpec) and not (p.parent / spec.checkpoint).is_file():
            line = lines.get(("forcefields", name, "checkpoint", "__value__"), lines.get(("forcefields", name), 1))
            problems.append(
                Problem(str(path), line, f"forcefields.{name}.checkpoint", f"no file at {p.parent / spec.checkpoint}")
            )
    if problems:
        raise CampaignError(problems)
    return config, p

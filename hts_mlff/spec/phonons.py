"""The phonon-sweep file of ``hts-mlff phonons`` as typed models (unknown keys are errors).

One file: an FCC crystal, its force fields, the pressures to scan, the finite-difference steps
and the output (Hessian eigenfrequencies, symmetricity, DOS, dispersion). Every
(force field, pressure) pair is one point of the sweep's result store.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from hts_mlff.spec.model import Strict
from hts_mlff.spec.statics import StaticsSweep, load_statics_config
from hts_mlff.spec.types import PositiveFloat, PositiveInt


class PhononCrystal(Strict):
    """The perfect FCC supercell (cubic 4-atom cell × ``repeat``) whose Hessian is computed."""

    element: str = Field(description="Chemical symbol, e.g. Ar.")
    repeat: tuple[PositiveInt, PositiveInt, PositiveInt] = (3, 3, 3)
    guess_lattice_A: PositiveFloat = Field(description="Starting cubic lattice constant for the cell relaxation.")


class PhononSettings(Strict):
    """How the Hessian is taken and what is reported."""

    steps_A: list[PositiveFloat] | None = Field(
        None,
        description="Finite-difference steps Δx in Å (a sweep axis: S vs step); default one step, 10⁻⁴ of the "
        "nearest-neighbour distance of guess_lattice_A. The first step gives the dispersion.",
    )
    dos_bin_THz: PositiveFloat = Field(0.02, description="Bin width of the density of states.")
    dos_smearing_THz: PositiveFloat = Field(0.03, description="Gaussian width of the smoothed density of states.")
    path: str = Field("GXWKGL", description="High-symmetry path of the FCC Brillouin zone (ASE's letters).")
    path_points: PositiveInt = Field(120, description="Wave vectors along the whole path.")
    reference: str | None = Field(None, description="Force field the others are compared with, mode by mode.")

    @field_validator("steps_A")
    @classmethod
    def _distinct_steps(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("steps_A values must be distinct")
        return value


class PhononConfig(StaticsSweep):
    """A phonon sweep: T = 0 lattice dynamics vs pressure for every force field."""

    crystal: PhononCrystal
    phonons: PhononSettings

    @field_validator("phonons")
    @classmethod
    def _known_reference(cls, value: PhononSettings, info: ValidationInfo) -> PhononSettings:
        names = sorted(info.data.get("forcefields") or {})
        if value.reference is not None and value.reference not in names:
            raise ValueError(f"reference {value.reference!r} is not one of the forcefields {names}")
        return value

    def steps_A(self) -> list[float]:
        """The finite-difference steps (Å): as given, else 10⁻⁴ of the guess lattice's
        nearest-neighbour distance (the same for every point, so points share the step axis)."""
        return list(self.phonons.steps_A or [1e-4 * self.crystal.guess_lattice_A / 2**0.5])

    def settings(self) -> dict:
        shaping = self.phonons.model_dump(mode="json", exclude={"reference"})
        return {"crystal": self.crystal.model_dump(mode="json"), "phonons": shaping, "dtype": self.dtype}


def load_phonon_config(path: str | Path) -> tuple[PhononConfig, Path]:
    """(config, its resolved path); errors name file, line and field."""
    return load_statics_config(path, PhononConfig)

"""The barrier-sweep file of ``hts-mlff barrier`` as typed models (unknown keys are errors).

One file: a crystal, its force fields, the pressures to scan, the string settings. Every
(force field, pressure) pair is one vacancy-hop minimum-energy path.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from hts_mlff.spec.model import Strict
from hts_mlff.spec.statics import StaticsSweep, load_statics_config
from hts_mlff.spec.types import Int, NonNegativeInt, PositiveFloat, PositiveInt


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

    n_images: Int = Field(9, ge=3, description="Images including the end states; odd puts one on a symmetric saddle.")
    fmax_eV_per_A: PositiveFloat = Field(3e-4, description="Stop when max per-atom |F⊥| is below this.")
    endpoint_fmax_eV_per_A: PositiveFloat = Field(1e-4, description="Force tolerance of the relaxed end states.")
    max_iterations: PositiveInt = 3000
    max_step_A: PositiveFloat = Field(0.05, description="Largest move of one atom per iteration.")


class BarrierConfig(StaticsSweep):
    """A barrier sweep: vacancy-hop barrier vs pressure for every force field."""

    crystal: HopCrystal
    string: StringSettings = StringSettings()

    def settings(self) -> dict:
        return {
            "crystal": self.crystal.model_dump(mode="json"),
            "string": self.string.model_dump(mode="json"),
            "dtype": self.dtype,
        }


def load_barrier_config(path: str | Path) -> tuple[BarrierConfig, Path]:
    """(config, its resolved path); errors name file, line and field."""
    return load_statics_config(path, BarrierConfig)

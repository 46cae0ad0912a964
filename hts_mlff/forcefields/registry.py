"""Build force-field objects from their campaign specs (the registry of kinds:
:mod:`hts_mlff.forcefields.kinds`)."""

from __future__ import annotations

from hts_mlff.forcefields.kinds import build_forcefield

__all__ = ["build_forcefield"]

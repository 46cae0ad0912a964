"""Ensembles: one small module each, with ``init`` and ``step`` over the shared primitives
(:class:`~hts_mlff.engine.integrators.Propagator`), registered here by name.

    init(md, propagator) -> None
        prepare ``md`` for the ensemble's first step (e.g. the stress a barostat reads);
        called when a run starts in it or the schedule switches to it.
    step(md, propagator, targets, *, stress) -> None
        advance every active replica of ``md`` from pack step ``md.step`` by one step;
        forces are current on entry and on exit (``stress``: with the stress).

``targets`` (:class:`~hts_mlff.engine.schedule.StepTargets`) carries the step's thermostat
targets, per replica or per atom; the schedule, not the ensemble, knows about ramps and
two-phase preparations. A new ensemble is one module here plus one :func:`register` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Ensemble:
    """One registered ensemble.

    Attributes:
        name: its key (the protocol's ensemble, with the barostat's axes where they matter).
        init, step: see the package doc.
        barostat: True when the cell moves (the step computes the stress every step).
        thermostat: True when the step reads thermostat targets.
    """

    name: str
    init: Callable[..., None]
    step: Callable[..., None]
    barostat: bool = False
    thermostat: bool = True


ENSEMBLES: dict[str, Ensemble] = {}


def register(module: Any, *, name: str, barostat: bool = False, thermostat: bool = True) -> Ensemble:
    """Register the ``init``/``step`` pair of ``module`` under ``name``."""
    ensemble = Ensemble(name=name, init=module.init, step=module.step, barostat=barostat, thermostat=thermostat)
    ENSEMBLES[name] = ensemble
    return ensemble


def ensemble_named(ensemble: str, *, barostat_axes: str = "xyz") -> Ensemble:
    """The registered ensemble of a protocol's ``ensemble`` ("nve", "nvt", "npt") and barostat axes."""
    if barostat_axes not in ("xyz", "z"):
        raise ValueError(f"barostat_axes {barostat_axes!r}: xyz or z")
    key = "npt_z" if ensemble == "npt" and barostat_axes == "z" else ensemble
    if key not in ENSEMBLES:
        raise ValueError(f"unknown ensemble {ensemble!r}; expected one of {sorted(ENSEMBLES)}")
    return ENSEMBLES[key]


from hts_mlff.engine.ensembles import langevin, npt_crescale, npzt_crescale, nve  # noqa: E402

register(nve, name="nve", thermostat=False)
register(langevin, name="nvt")
register(npt_crescale, name="npt", barostat=True)
register(npzt_crescale, name="npt_z", barostat=True)

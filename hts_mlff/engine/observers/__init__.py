"""Observers: on-the-fly reductions of a pack into per-replica arrays (see :mod:`.base`)."""

from hts_mlff.engine.observers.base import Observer, snapshot_count
from hts_mlff.engine.observers.snapshots import SNAPSHOT_DIMS, SnapshotObserver
from hts_mlff.engine.observers.thermo import ThermoObserver
from hts_mlff.engine.observers.vacancy import VacancyObserver

__all__ = ["SNAPSHOT_DIMS", "Observer", "SnapshotObserver", "ThermoObserver", "VacancyObserver", "snapshot_count"]

"""The observer contract: reduce the running state into fixed-size per-replica buffers.

An observer is told the pack once (:meth:`Observer.start`), sees every sample
(:meth:`Observer.record`) and hands back named arrays whose first axis is the replica
(:meth:`Observer.results`). The names are quantities of the store's table
(:mod:`hts_mlff.store.quantities`), which says their dims, dtype and units; the engine itself
knows nothing of the store. Buffers are numpy arrays allocated once for the whole run and
padded to the largest replica in the pack (the fill value where a replica has fewer atoms
or has failed). :meth:`Observer.state_dict` is what a checkpoint keeps of an observer.

In a pack that refills (:mod:`hts_mlff.engine.refill`), replicas are pack slots that run one
task after another, each from its own start: ``frame`` is then each slot's own sample index
((n_systems,) int, −1 where a slot does not sample), the engine takes a finished slot's row
of :meth:`Observer.results` and clears it (:meth:`Observer.reset_replica`) for the next task.
A pack holds one system, so per-replica set-up (reference sites, repeats) is the same for
every task a slot runs; an observer whose set-up depends on the task says
``refillable = False``.
"""

from __future__ import annotations

import numpy as np

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.neighbors import NeighborList
from hts_mlff.engine.state import BatchState


def sample_rows(frame: int | np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, frames): the replicas that record this sample (alive and sampling) and the frame
    of each. ``frame``: the pack's sample index, or each replica's own ((n_systems,), −1: none)."""
    frames = np.broadcast_to(np.asarray(frame, dtype=np.int64), alive.shape)
    rows = np.flatnonzero(alive & (frames >= 0))
    return rows, frames[rows]


class Observer:
    """Base class: subclasses set :attr:`quantities` and fill :attr:`buffers`."""

    #: Names of the quantities this observer produces (keys of :meth:`results`).
    quantities: tuple[str, ...] = ()
    #: Whether a pack slot can hand its row to a new task (set-up that depends on the system only).
    refillable: bool = True
    #: Buffers whose first axis is the pack's atoms (not its replicas).
    per_atom_buffers: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}
        self._fills: dict[str, np.ndarray] = {}

    def dimension_sizes(self, *, n_frames: int) -> dict[str, int]:
        """Sizes of the sample dims of its own (e.g. ``velocity_time_fs``), for the store template."""
        return {}

    def coordinates(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        """Coordinate values (fs) of its own sample dims, from the (n_frames,) sample times."""
        return {}

    def attach(self, forcefield: ForceField, *, neighbors: NeighborList | None = None) -> None:
        """Told the pack's force field and its neighbour list before :meth:`start` (observers that
        call the force field keep both)."""

    def start(self, state: BatchState, *, n_frames: int) -> None:
        """Allocate the buffers for ``state``'s replicas and ``n_frames`` samples."""
        raise NotImplementedError

    def record(self, state: BatchState, output: ForceOutput, *, frame: int | np.ndarray, alive: np.ndarray) -> None:
        """Reduce sample ``frame`` (see :func:`sample_rows`); replicas with ``alive`` False keep
        what they hold (the fill value after a failure)."""
        raise NotImplementedError

    def results(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        """name → (n_systems, …) arrays at the end of the run."""
        return dict(self.buffers)

    def note_fills(self) -> None:
        """Remember every buffer's start value (call right after :meth:`start`, before any record)."""
        self._fills = {name: buffer.reshape(-1)[:1].copy() for name, buffer in self.buffers.items()}

    def reset_replica(self, replica: int, *, atoms: slice) -> None:
        """Return replica ``replica``'s rows (its ``atoms`` in per-atom buffers) to their start values."""
        for name, buffer in self.buffers.items():
            fill = self._fills[name][0] if self._fills[name].size else 0
            if name in self.per_atom_buffers:
                buffer[atoms] = fill
            else:
                buffer[replica] = fill

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.buffers)

    def load_state_dict(self, data: dict[str, np.ndarray]) -> None:
        for name, buffer in self.buffers.items():
            if name in data:
                buffer[...] = np.asarray(data[name])


def snapshot_count(n_frames: int, every: int) -> int:
    """Number of snapshots kept when every ``every``-th of ``n_frames`` samples is stored."""
    return 0 if every <= 0 else (n_frames - 1) // every + 1

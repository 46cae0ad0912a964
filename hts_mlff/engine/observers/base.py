"""The observer contract: reduce the running state into fixed-size per-replica buffers.

An observer is told the pack once (:meth:`Observer.start`), sees every sample
(:meth:`Observer.record`) and hands back named arrays whose first axis is the replica
(:meth:`Observer.results`). The names are quantities of the store's table
(:mod:`hts_mlff.store.quantities`), which says their dims, dtype and units; the engine itself
knows nothing of the store. Buffers are numpy arrays allocated once for the whole run and
padded to the largest replica in the pack (the fill value where a replica has fewer atoms
or has failed). :meth:`Observer.state_dict` is what a checkpoint keeps of an observer.
"""

from __future__ import annotations

import numpy as np

from hts_mlff.engine.forcefield import ForceField, ForceOutput
from hts_mlff.engine.state import BatchState


class Observer:
    """Base class: subclasses set :attr:`quantities` and fill :attr:`buffers`."""

    #: Names of the quantities this observer produces (keys of :meth:`results`).
    quantities: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.buffers: dict[str, np.ndarray] = {}

    def dimension_sizes(self, *, n_frames: int) -> dict[str, int]:
        """Sizes of the sample dims of its own (e.g. ``velocity_time_fs``), for the store template."""
        return {}

    def coordinates(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        """Coordinate values (fs) of its own sample dims, from the (n_frames,) sample times."""
        return {}

    def attach(self, forcefield: ForceField) -> None:
        """Told the pack's force field before :meth:`start` (observers that call it keep it)."""

    def start(self, state: BatchState, *, n_frames: int) -> None:
        """Allocate the buffers for ``state``'s replicas and ``n_frames`` samples."""
        raise NotImplementedError

    def record(self, state: BatchState, output: ForceOutput, *, frame: int, alive: np.ndarray) -> None:
        """Reduce sample ``frame``; replicas with ``alive`` False keep the fill value."""
        raise NotImplementedError

    def results(self, *, time_fs: np.ndarray) -> dict[str, np.ndarray]:
        """name → (n_systems, …) arrays at the end of the run."""
        return dict(self.buffers)

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.buffers)

    def load_state_dict(self, data: dict[str, np.ndarray]) -> None:
        for name, buffer in self.buffers.items():
            if name in data:
                buffer[...] = np.asarray(data[name])


def snapshot_count(n_frames: int, every: int) -> int:
    """Number of snapshots kept when every ``every``-th of ``n_frames`` samples is stored."""
    return 0 if every <= 0 else (n_frames - 1) // every + 1

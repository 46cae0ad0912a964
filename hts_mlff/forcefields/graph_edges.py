"""What the adapters of graph models (MACE, NequIP/Allegro, SevenNet, CHGNet) share.

* :func:`import_package` imports a model package the way the engine needs it: a clear
  ``ImportError`` naming the optional extra when it is missing, and the process environment
  exactly as it was before the import. ``import mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
  for the whole process, which turns every later ``torch.load`` without an explicit
  ``weights_only`` into a full unpickler; the adapter loads the model's own file explicitly
  (after approval, :mod:`hts_mlff.spec.trust`) and nothing else in the process is weakened.
* :func:`directed_edges` turns the engine's half neighbour list (each pair once, vector
  r_j − r_i + s·cell) into the directed edge list these models read (both directions, within
  the model's cutoff), on the state's device, without a CPU round trip.
* :func:`load_pickled_model` opens a model file that is a pickle or a TorchScript archive, the
  only place such a file is read.
* :class:`GraphModelForceField` is what their force fields share: the frozen model, one copy
  per device (and dtype), pairs layout, one torch thread per pack on a CPU.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from hts_mlff.engine.forcefield import ForceField
from hts_mlff.engine.neighbors import NeighborList, pairs_for
from hts_mlff.engine.state import BatchState


@contextlib.contextmanager
def environment_restored() -> Iterator[None]:
    """Undo every change made to ``os.environ`` inside the block (set, changed or removed keys)."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        for key, value in before.items():
            if os.environ.get(key) != value:
                os.environ[key] = value


@contextlib.contextmanager
def torch_globals_restored() -> Iterator[None]:
    """Undo what a package's set-up changes process-wide in torch and e3nn inside the block:
    the default dtype, the CPU random state, TF32 flags, e3nn's optimisation defaults, and the
    environment. (``nequip``'s ``set_global_state`` sets float64 as the default dtype and seeds
    torch: left in place, SevenNet built afterwards in the same process fails, and a user's own
    random stream is reset.)"""
    import sys

    dtype = torch.get_default_dtype()
    rng = torch.random.get_rng_state()
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    e3nn = sys.modules.get("e3nn")
    e3nn_defaults = e3nn.get_optimization_defaults() if e3nn is not None else None
    try:
        with environment_restored():
            yield
    finally:
        torch.set_default_dtype(dtype)
        torch.random.set_rng_state(rng)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
        if e3nn_defaults is not None:
            e3nn.set_optimization_defaults(**e3nn_defaults)


def import_package(name: str, *, extra: str) -> ModuleType:
    """``importlib.import_module(name)`` with the environment restored afterwards.

    Raises:
        ImportError: the package is not installed (the message names ``pip install
            'hts-mlff[extra]'``).
    """
    with environment_restored():
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise ImportError(
                f"this force-field kind needs the package {name.split('.')[0]!r}: pip install 'hts-mlff[{extra}]' "
                f"({exc})"
            ) from exc


def is_torchscript(path: Path) -> bool:
    """True for a TorchScript archive (``torch.jit.save``): a zip holding ``*/code/`` sources."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name for name in archive.namelist())


def load_pickled_model(path: Path) -> Any:
    """The object in a model file: TorchScript archive or pickle (``torch.save`` of a module).

    Loading a pickle runs code: callers approve the file first
    (:func:`hts_mlff.spec.trust.require_approved_file`). Loaded on the CPU; the adapter moves it.
    """
    with environment_restored():
        if is_torchscript(path):
            return torch.jit.load(str(path), map_location="cpu")
        return torch.load(path, map_location="cpu", weights_only=False)


@dataclass
class DirectedEdges:
    """Both directions of every pair within the cutoff, ``sender → receiver``.

    Attributes:
        sender, receiver: (n_edges,) int64 global atom indices.
        unit_shifts: (n_edges, 3) integer cell shifts (state dtype): the edge vector is
            r_receiver − r_sender + unit_shifts · cell[system].
        system: (n_edges,) int64 system of each edge.
    """

    sender: torch.Tensor
    receiver: torch.Tensor
    unit_shifts: torch.Tensor
    system: torch.Tensor

    def shifts_A(self, cell: torch.Tensor) -> torch.Tensor:
        """(n_edges, 3) Cartesian shift vectors in Å for ``cell`` (n_systems, 3, 3), differentiable."""
        return torch.einsum("ek,ekl->el", self.unit_shifts.to(cell.dtype), cell[self.system])

    def vectors_A(self, positions: torch.Tensor, cell: torch.Tensor) -> torch.Tensor:
        """(n_edges, 3) edge vectors r_receiver − r_sender + shift in Å, differentiable."""
        return positions[self.receiver] - positions[self.sender] + self.shifts_A(cell)


def directed_edges(state: BatchState, neighbors: NeighborList | None, *, cutoff_A: float) -> DirectedEdges:
    """The directed edges within ``cutoff_A`` of the engine's list (or of a fresh one).

    Order: the list's pairs within the cutoff in its canonical order (i → j), then the same
    pairs reversed (j → i): a replica's edges depend only on its own list, never on the pack.
    """
    nl = pairs_for(state, neighbors, cutoff_A=cutoff_A)
    with torch.no_grad():
        d = nl.pair_vectors_t(state)
        keep = torch.nonzero((d * d).sum(0) < cutoff_A * cutoff_A).squeeze(1)
    i, j = nl.pair_i.index_select(0, keep), nl.pair_j.index_select(0, keep)
    shift = nl.pair_shift.index_select(0, keep)
    system = nl.pair_system.index_select(0, keep)
    return DirectedEdges(
        sender=torch.cat([i, j]),
        receiver=torch.cat([j, i]),
        unit_shifts=torch.cat([shift, -shift]),
        system=torch.cat([system, system]),
    )


def species_lookup(known_atomic_numbers: list[int], atomic_numbers: torch.Tensor, *, model: str) -> torch.Tensor:
    """(n_atoms,) row of each atom's atomic number in ``known_atomic_numbers``; ValueError naming
    the model and the unknown elements otherwise."""
    table = torch.full((119,), -1, dtype=torch.int64, device=atomic_numbers.device)
    table[torch.as_tensor(known_atomic_numbers, dtype=torch.int64, device=atomic_numbers.device)] = torch.arange(
        len(known_atomic_numbers), device=atomic_numbers.device
    )
    index = table[atomic_numbers]
    if bool((index < 0).any()):
        from ase.data import chemical_symbols

        missing = sorted({chemical_symbols[int(z)] for z in atomic_numbers[index < 0].unique().tolist()})
        known = [chemical_symbols[int(z)] for z in known_atomic_numbers]
        raise ValueError(f"{model} knows the elements {known}; the system has {missing}")
    return index


class GraphModelForceField(ForceField):
    """Base of the force fields that drive another package's graph model over whole packs.

    Subclasses call :meth:`_hold` with the loaded model and implement ``forward`` (reading
    :meth:`model_on`); ``family`` names their entry in :meth:`config`.
    """

    neighbor_layout = "pairs"
    single_threaded_on_cpu = True  # see ForceField: a replica's bits then depend on its pack least
    family = "model"

    def _hold(self, model: torch.nn.Module, *, description: dict[str, Any] | None) -> None:
        """Keep ``model`` frozen (eval mode, no parameter gradients) with its JSON identity."""
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.description = dict(description or {})
        self._copies: dict[tuple[torch.device, torch.dtype | None], torch.nn.Module] = {}

    def config(self) -> dict[str, Any]:
        return {self.family: self.description}

    def model_on(self, device: torch.device, dtype: torch.dtype | None = None) -> torch.nn.Module:
        """The model on ``device`` (in ``dtype`` when given): one converted copy per pair."""
        key = (device, dtype)
        if key not in self._copies:
            import copy

            moved = copy.deepcopy(self.model).to(device)
            self._copies[key] = moved if dtype is None else moved.to(dtype)
        return self._copies[key]

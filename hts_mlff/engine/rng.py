"""Counter-based, per-replica random numbers.

Every replica owns a 64-bit key derived from (campaign, task id). A random number is a
pure function of (key, stream, step, element index inside the replica), so

* a trajectory is bit-identical whichever pack it runs in and wherever it sits there,
* the generator has no state to checkpoint: the step counter is the state.

Uniform 32-bit words come from an integer hash (Wellons' "lowbias32" finaliser, chained).
Gaussian numbers come from a 65 537-entry table of the standard normal quantile function
with linear interpolation, so only exact IEEE operations (gather, +, ×) touch the values
and no transcendental function can differ between vectorised and scalar code paths.
The tails are truncated at |x| ≈ 4.3 (probability ≈ 2·10⁻⁵); the table is rescaled so the
variance is exactly one.
"""

from __future__ import annotations

import hashlib
from enum import IntEnum

import numpy as np
import torch
from scipy.special import ndtri

_MASK32 = 0xFFFFFFFF
_TABLE_BITS = 16


class Stream(IntEnum):
    """Independent random streams of one replica."""

    INITIAL_VELOCITIES = 1
    LANGEVIN = 2
    BAROSTAT = 3


def replica_key(campaign: str, task_id: str) -> int:
    """64-bit key of one replica from its campaign name and task id."""
    digest = hashlib.blake2b(f"{campaign}\x00{task_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """Hash int64 tensors (or numpy int64 arrays) holding values in [0, 2³²) to [0, 2³²)."""
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def _normal_table() -> np.ndarray:
    n = (1 << _TABLE_BITS) + 1
    table = ndtri((np.arange(n) + 0.5) / n)
    a, b = table[:-1], table[1:]
    variance = np.mean((a * a + a * b + b * b) / 3.0)
    return table / np.sqrt(variance)


_TABLE_NP = _normal_table()
_TABLE_CACHE: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def normal_table(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The (2¹⁶ + 1,) standard-normal quantile table the Gaussian draws interpolate."""
    key = (device, dtype)
    if key not in _TABLE_CACHE:
        _TABLE_CACHE[key] = torch.as_tensor(_TABLE_NP, dtype=dtype, device=device)
    return _TABLE_CACHE[key]


class ReplicaRandom:
    """Gaussian draws for a flat batch of replicas.

    Args:
        keys: one 64-bit key per replica (Python ints), length n_systems.
        element_system: (n_elements,) int64 replica index of every element.
        element_local: (n_elements,) int64 index of the element inside its replica.
    """

    def __init__(self, keys: list[int], *, device: torch.device) -> None:
        self.device = device
        self._key_hash = self._hash_keys(keys)  # (n_systems,)
        #: (n_systems,) int64 step at which each replica started (a refilled pack slot starts
        #: its task later than the pack): the draws use the replica's own step, step − start.
        self.start_step = torch.zeros_like(self._key_hash)
        self._bits: torch.Tensor | None = None

    def _hash_keys(self, keys: list[int]) -> torch.Tensor:
        k = torch.tensor([[key & _MASK32, key >> 32] for key in keys], dtype=torch.int64, device=self.device)
        return _mix32((_mix32(k[:, 0]) + k[:, 1]) & _MASK32)

    def assign(self, replica: int, *, key: int, start_step: int) -> None:
        """Give replica (pack slot) ``replica`` a new key, starting at pack step ``start_step``."""
        self._key_hash[replica] = self._hash_keys([key])[0]
        self.start_step[replica] = int(start_step)

    def stream_base(self, stream: int, step: int) -> torch.Tensor:
        """(n_systems,) per-replica hash of (key, stream, the replica's own step)."""
        h = _mix32((self._key_hash + int(stream)) & _MASK32)
        own = step - self.start_step  # (n_systems,) int64, ≥ 0 for a running replica
        h = _mix32((h + (own & _MASK32)) & _MASK32)
        return _mix32((h + (own >> 32)) & _MASK32)

    def stream_base_bits(self, stream: int, step: int) -> torch.Tensor:
        """:meth:`stream_base` as the (n_systems,) int32 tensor holding its 32 bits (what the
        kernels read as uint32). On a CPU it is one buffer, refilled in place at every call
        (numpy on a pack's few dozen replicas: ~20 µs less than some thirty torch calls)."""
        if self.device.type != "cpu":
            base = self.stream_base(stream, step)
            return torch.where(base >= 2**31, base - 2**32, base).to(torch.int32)
        key_hash, start = self._key_hash.numpy(), self.start_step.numpy()  # share the tensors' memory
        h = _mix32((key_hash + int(stream)) & _MASK32)
        own = step - start
        h = _mix32((h + (own & _MASK32)) & _MASK32)
        h = _mix32((h + (own >> 32)) & _MASK32)
        if self._bits is None or self._bits.shape[0] != h.shape[0]:
            self._bits = torch.empty(h.shape[0], dtype=torch.int32)
        self._bits.numpy()[:] = h.astype(np.uint32).view(np.int32)
        return self._bits

    def normal(
        self,
        stream: int,
        step: int,
        *,
        element_system: torch.Tensor,
        element_local: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """Standard normal numbers, one per element; shape (n_elements,)."""
        base = self.stream_base(stream, step)[element_system]
        h = _mix32((base + element_local) & _MASK32)
        h = _mix32((h ^ base) & _MASK32)
        index = h >> _TABLE_BITS
        frac = (h & ((1 << _TABLE_BITS) - 1)).to(dtype) * (1.0 / (1 << _TABLE_BITS))
        table = normal_table(self.device, dtype)
        lower = table[index]
        return lower + frac * (table[index + 1] - lower)

    def normal_per_system(self, stream: int, step: int, *, dtype: torch.dtype) -> torch.Tensor:
        """One standard normal number per replica; shape (n_systems,)."""
        n = self._key_hash.shape[0]
        idx = torch.arange(n, device=self.device)
        return self.normal(stream, step, element_system=idx, element_local=torch.zeros_like(idx), dtype=dtype)

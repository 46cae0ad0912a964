"""Compiled kernels of the engine's hot path (NVIDIA Warp; the same code on CPU and CUDA).

Torch stays the container: kernels read and write the state's tensors in place through
``warp.from_torch`` (no copies). Every kernel runs one thread per atom (or per system) and
sums in a fixed order without atomics, so results are bit-identical whichever pack a
replica runs in, on CPU and on a GPU.

* :mod:`~hts_mlff.engine.kernels.neighbor_matrix`: per-atom (full) neighbour rows, sorted by
  neighbour index, rebuilt per system (its kernels: :mod:`~hts_mlff.engine.kernels.neighbor_builders`);
* :mod:`~hts_mlff.engine.kernels.pair`: pair potentials over those rows with the energy,
  virial, closest pair and largest force of every system in the same pass.

Warp is imported lazily: without it (or with ``HTS_MLFF_KERNELS=torch``) the engine uses its
torch path, which stays the reference the kernels are tested against.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
import platform
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch


def _cpu_fingerprint() -> str:
    """Short hash of the CPU model and instruction-set flags: Warp compiles CPU kernels with
    ``-march=native``, so nodes of different CPU types must not share compiled kernels."""
    text = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("model name", "flags", "Features")):
                text += line
                if line.startswith(("flags", "Features")):
                    break
    except OSError:
        text += platform.processor()
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


@functools.cache
def _warp() -> Any | None:
    try:
        import warp as wp
    except ImportError:
        return None
    wp.config.quiet = True  # older releases
    if hasattr(wp.config, "log_level"):
        wp.config.log_level = 40  # errors only: no init banner, no "no CUDA driver" on CPU nodes
    if "WARP_CACHE_PATH" not in os.environ:  # one kernel cache per CPU type (shared home on a cluster)
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        wp.config.kernel_cache_dir = str(base / "hts_mlff" / "warp" / _cpu_fingerprint())
    if torch.cuda.is_available():
        wp.init()
    else:  # a CPU node: keep Warp's native "no CUDA driver" line off every worker's log
        with _native_stderr_silenced():
            wp.init()
    return wp


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration (native libraries write there)."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def kernels_enabled(device: torch.device) -> bool:
    """True when the compiled path can run on ``device`` (Warp importable, CPU or a CUDA device
    Warp sees) and the user did not ask for the torch path (``HTS_MLFF_KERNELS=torch``)."""
    if os.environ.get("HTS_MLFF_KERNELS", "auto").lower() == "torch":
        return False
    wp = _warp()
    if wp is None:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and wp.is_cuda_available()


def warp() -> Any:
    """The initialised ``warp`` module (raises when it is not installed)."""
    wp = _warp()
    if wp is None:
        raise ImportError("warp-lang is not installed: pip install warp-lang")
    return wp


def warp_device(device: torch.device) -> str:
    """Warp's name of a torch device ("cpu", "cuda:0", …)."""
    if device.type == "cpu":
        return "cpu"
    return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"


_VIEWS: dict[int, tuple[torch.Tensor, int, tuple, Any, Any]] = {}
_MAX_VIEWS = 64


def as_warp(tensor: torch.Tensor, dtype: Any, *, keep: bool = False) -> Any:
    """A Warp view of a contiguous torch tensor (shares its memory).

    ``keep=True`` for tensors that live across steps and are updated in place (the state's
    arrays, the rows, the tables): their views are reused, which saves ~20 µs per argument per
    launch. The cache holds at most :data:`_MAX_VIEWS` such tensors (and keeps them alive).
    """
    if not keep:
        return warp().from_torch(tensor, dtype=dtype, requires_grad=False)
    key = id(tensor)
    hit = _VIEWS.get(key)
    if hit is not None and hit[0] is tensor and hit[1] == tensor.data_ptr() and hit[2] == tuple(tensor.shape):
        if hit[3] is dtype:
            return hit[4]
    view = warp().from_torch(tensor, dtype=dtype, requires_grad=False)
    if len(_VIEWS) >= _MAX_VIEWS:
        _VIEWS.pop(next(iter(_VIEWS)))
    _VIEWS[key] = (tensor, tensor.data_ptr(), tuple(tensor.shape), dtype, view)
    return view


def state_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor itself when a kernel can read it in place (no autograd, contiguous), so its
    cached view is reused; else a detached contiguous copy."""
    if not tensor.requires_grad and tensor.is_contiguous():
        return tensor
    return tensor.detach().contiguous()


def scalar_type(dtype: torch.dtype) -> Any:
    """Warp scalar of a torch float dtype."""
    wp = warp()
    if dtype == torch.float64:
        return wp.float64
    if dtype == torch.float32:
        return wp.float32
    raise TypeError(f"kernels run in float32 or float64, not {dtype}")


Span = tuple[int, int]


def spans(offsets: Sequence[int], n_chunks: int, *, whole_systems: bool, min_size: int = 1) -> list[Span]:
    """Split the items [offsets[0], offsets[-1]) into at most ``n_chunks`` [lo, hi) spans of about
    equal size and at least ``min_size`` items (handing a span to another thread costs ~20 µs), on
    system boundaries when ``whole_systems`` (a kernel that writes to other atoms of the same
    system) or when there are enough systems; otherwise anywhere."""
    total = offsets[-1] - offsets[0]
    n_chunks = max(1, min(n_chunks, total // max(min_size, 1)))
    if n_chunks == 1:
        return [(offsets[0], offsets[-1])]
    if whole_systems or len(offsets) - 1 >= n_chunks:
        out, lo = [], offsets[0]
        for k in range(1, n_chunks):
            target = offsets[0] + total * k / n_chunks
            cut = min(offsets, key=lambda o: abs(o - target))
            if lo < cut < offsets[-1]:
                out.append((lo, cut))
                lo = cut
        out.append((lo, offsets[-1]))
        return out
    bounds = [offsets[0] + round(total * k / n_chunks) for k in range(n_chunks + 1)]
    return [(bounds[k], bounds[k + 1]) for k in range(n_chunks)]


#: Fewest atoms per span for the pair kernels (a few hundred operations per atom); the list
#: builders, heavier still, split from :data:`MIN_BUILD_SPAN` atoms; the updates and per-system
#: sums (a few dozen operations per atom, ~5 ns) only from :data:`MIN_LIGHT_SPAN`: below that,
#: handing half of one to another thread (~30 µs) costs more than it saves (measured: a Langevin
#: kick of 16,384 atoms took 0.24 ms on one thread, 0.49 ms split over two).
MIN_SPAN = 4096
MIN_BUILD_SPAN = 256
MIN_LIGHT_SPAN = 65536

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LAUNCHED: set[int] = set()


def launch(kernel: Any, *, spans: Sequence[Span], inputs: list, device: str) -> None:
    """Launch ``kernel(first, *inputs)`` over the thread ids [lo, hi) of every span.

    On a CPU, Warp runs one launch serially; the spans run side by side in a thread pool
    (a launch releases the GIL), one per thread torch was given, the calling thread taking one.
    The arguments are packed once, here, and each span's launch is a copy of that one with its own
    first id and size, so the pool's threads only run the compiled code. On a GPU one launch covers all.
    """
    wp = warp()
    if device != "cpu":  # on torch's current stream, so kernels and torch operations stay ordered
        lo, hi = spans[0][0], spans[-1][1]
        stream = wp.stream_from_torch(torch.cuda.current_stream(torch.device(device)))
        wp.launch(kernel, dim=hi - lo, inputs=[wp.int32(lo), *inputs], device=device, stream=stream)
        return
    if len(spans) == 1:
        wp.launch(kernel, dim=spans[0][1] - spans[0][0], inputs=[wp.int32(spans[0][0]), *inputs], device=device)
        _LAUNCHED.add(id(kernel))
        return
    todo = list(spans)
    if id(kernel) not in _LAUNCHED:  # the first launch loads (or compiles) the module: not in parallel
        a, b = todo.pop(0)
        wp.launch(kernel, dim=b - a, inputs=[wp.int32(a), *inputs], device=device)
        _LAUNCHED.add(id(kernel))
        if not todo:
            return
    a, b = todo[0]
    first = wp.launch(kernel, dim=b - a, inputs=[wp.int32(a), *inputs], device=device, record_cmd=True)
    commands = [first]
    for a, b in todo[1:]:
        command = copy.copy(first)
        command.params = list(first.params)
        command.fwd_args = None if first.fwd_args is None else list(first.fwd_args)
        command.set_dim(b - a)
        command.set_param_at_index(0, wp.int32(a))
        commands.append(command)
    if len(commands) == 1:
        commands[0].launch()
        return
    pool = _POOLS.get(len(commands) - 1)
    if pool is None:
        pool = _POOLS[len(commands) - 1] = ThreadPoolExecutor(
            max_workers=len(commands) - 1, thread_name_prefix="hts-kernels"
        )
    futures = [pool.submit(command.launch) for command in commands[1:]]
    commands[0].launch()  # the calling thread takes a span itself (one hand-off fewer)
    for future in futures:
        future.result()


_KERNEL_THREADS: int | None = None


def kernel_threads() -> int:
    """How many spans a CPU launch is split into: the threads torch was given (or, inside
    :func:`threads_to_kernels`, the threads it had before)."""
    return max(1, _KERNEL_THREADS or torch.get_num_threads())


@contextmanager
def threads_to_kernels() -> Iterator[None]:
    """Give the CPU threads to the kernels' spans and run torch's own operations on one.

    Between two launches torch's OpenMP threads spin while they wait for work, so two thread
    pools on the same cores slow each other down (measured: 2 + 2 threads ran slower than one).
    """
    global _KERNEL_THREADS
    threads, previous = torch.get_num_threads(), _KERNEL_THREADS
    _KERNEL_THREADS = threads
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        _KERNEL_THREADS = previous

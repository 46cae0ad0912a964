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
import threading
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


_MAX_VIEWS = 256
#: Per thread (packs may run side by side in one worker's threads): ``views``, the Warp views by
#: address (:func:`as_warp`); ``pinned``, the tensors behind the views handed out since the
#: thread's last launch, kept alive until that launch returns (so a temporary passed straight
#: into a launch's arguments is not freed under the kernel); ``commands``, the packed launches
#: (:func:`launch`), whose patched addresses must not be shared by two packs.
_LOCAL = threading.local()


def _local() -> Any:
    if not hasattr(_LOCAL, "views"):
        _LOCAL.views, _LOCAL.pinned, _LOCAL.commands = {}, [], {}
    return _LOCAL


def as_warp(tensor: torch.Tensor, dtype: Any) -> Any:
    """A Warp view of a contiguous torch tensor (shares its memory).

    Views are kept by address, shape and type, and hold no reference to the tensor: a tensor
    allocated afresh at the same address (the allocator reuses blocks step after step) gets the
    view made before (~0.5 µs instead of ~8 µs for ``warp.from_torch``), and a view is only ever
    handed out for a live tensor of exactly that memory. At most :data:`_MAX_VIEWS` are kept.
    The tensor itself is held until the next :func:`launch` returns; a view kept longer must
    have its tensor kept by the caller.
    """
    local = _local()
    local.pinned.append(tensor)
    views = local.views
    key = (tensor.data_ptr(), tensor.shape, tensor.stride(), dtype, tensor.device)
    view = views.get(key)
    if view is not None:
        return view
    wp = warp()
    if not tensor.is_contiguous() or tensor.numel() == 0 or wp.types.type_size_in_bytes(dtype) != tensor.element_size():
        return wp.from_torch(tensor, dtype=dtype, requires_grad=False)
    if len(views) >= _MAX_VIEWS:
        views.pop(next(iter(views)))
    view = wp.array(ptr=key[0], dtype=dtype, shape=tuple(key[1]), device=warp_device(tensor.device), copy=False)
    views[key] = view
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
MIN_SPAN = 1024
MIN_BUILD_SPAN = 256
#: The thermostat step (three Gaussian draws per atom, ~60 ns) splits from this many atoms.
MIN_THERMOSTAT_SPAN = 8192
MIN_LIGHT_SPAN = 65536

_POOLS: dict[int, ThreadPoolExecutor] = {}
_LAUNCHED: set[int] = set()


#: Packed launches kept per thread (:func:`launch`), by kernel, spans and the arguments' layout,
#: with the addresses they were packed with. They hold raw pointers only, never the arrays.
_MAX_COMMANDS = 256


def _argument_key(value: Any) -> tuple[Any, int | None]:
    """What a packed launch depends on of one argument, and the array's address: an array's
    shape, strides and type (its address is patched in when it changes: each step's fresh
    output arrays), a scalar's type and value; (None, None) when it cannot be told (the launch
    is then packed afresh)."""
    if hasattr(value, "ptr") and hasattr(value, "strides"):
        return (value.shape, value.strides, value.dtype), value.ptr
    inner = getattr(value, "value", value)
    try:
        hash(inner)
    except TypeError:
        return None, None
    return (type(value), inner), None


def launch(kernel: Any, *, spans: Sequence[Span], inputs: list, device: str) -> None:
    """Launch ``kernel(first, *inputs)`` over the thread ids [lo, hi) of every span.

    On a CPU, Warp runs one launch serially; the spans run side by side in a thread pool
    (a launch releases the GIL), one per thread torch was given, the calling thread taking one.
    The arguments are packed once, here, and each span's launch is a copy of that one with its own
    first id and size, so the pool's threads only run the compiled code; a launch whose kernel,
    spans and arguments (shapes, types, scalar values) were seen before replays its packed
    commands, with the addresses of fresh arrays patched in (~5 µs instead of ~25 µs of packing,
    every step). On a GPU one launch covers all.
    """
    try:
        _launch(kernel, spans=spans, inputs=inputs, device=device)
    finally:
        _local().pinned.clear()


def _launch(kernel: Any, *, spans: Sequence[Span], inputs: list, device: str) -> None:
    wp = warp()
    if device != "cpu":  # on torch's current stream, so kernels and torch operations stay ordered
        lo, hi = spans[0][0], spans[-1][1]
        stream = wp.stream_from_torch(torch.cuda.current_stream(torch.device(device)))
        wp.launch(kernel, dim=hi - lo, inputs=[wp.int32(lo), *inputs], device=device, stream=stream)
        return
    todo = list(spans)
    layout, addresses = zip(*(_argument_key(value) for value in inputs), strict=True) if inputs else ((), ())
    key = (id(kernel), tuple(todo), layout) if None not in layout else None
    cache = _local().commands
    entry = cache.get(key) if key is not None else None
    commands = None
    if entry is not None:
        commands, packed_at = entry
        for index, address in enumerate(addresses):
            if address != packed_at[index]:  # a fresh array of the same layout: patch its address in
                for command in commands:
                    command.set_param_at_index(index + 1, inputs[index])
                packed_at[index] = address
    if commands is None:
        if id(kernel) not in _LAUNCHED:  # the first launch loads (or compiles) the module: not in parallel
            a, b = todo.pop(0)
            wp.launch(kernel, dim=b - a, inputs=[wp.int32(a), *inputs], device=device)
            _LAUNCHED.add(id(kernel))
            if not todo:
                return
        commands = _packed(kernel, todo, inputs, device=device)
        if key is not None and len(commands) == len(spans):
            if len(cache) >= _MAX_COMMANDS:
                cache.pop(next(iter(cache)))
            cache[key] = (commands, list(addresses))
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


def _packed(kernel: Any, todo: list[Span], inputs: list, *, device: str) -> list[Any]:
    """One packed launch per span: the first packed from the arguments, the others copies of it
    with their own first id and size (no array references kept: replaying needs none)."""
    wp = warp()
    a, b = todo[0]
    first = wp.launch(kernel, dim=b - a, inputs=[wp.int32(a), *inputs], device=device, record_cmd=True)
    first.fwd_args = None  # only a graph capture would need the arrays; dropping them frees their memory
    commands = [first]
    for a, b in todo[1:]:
        command = copy.copy(first)
        command.params = list(first.params)
        command.set_dim(b - a)
        command.set_param_at_index(0, wp.int32(a))
        commands.append(command)
    return commands


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

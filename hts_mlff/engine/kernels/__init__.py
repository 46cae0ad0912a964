"""Compiled kernels of the engine's hot path (NVIDIA Warp; the same code on CPU and CUDA).

Torch stays the container: kernels read and write the state's tensors in place through Warp
views (no copies).

* :mod:`~hts_mlff.engine.kernels.neighbor_matrix`: per-atom neighbour rows, rebuilt per system
  (its kernels: :mod:`~hts_mlff.engine.kernels.neighbor_builders`);
* :mod:`~hts_mlff.engine.kernels.pair`: pair potentials over those rows with the energy,
  virial, closest pair and largest force of every system in the same pass;
* :mod:`~hts_mlff.engine.kernels.integrator`: the fused Langevin and velocity-Verlet updates;
* :mod:`~hts_mlff.engine.kernels.tuning`: the tuned constants and what chose them;
* here: views, launches over spans of threads, the kernel threads of a pack.

Invariants every kernel keeps (they are what makes a replica's trajectory independent of its
pack, of the thread count and of the device; ``tests/engine/test_kernels.py`` checks each):

1. **Canonical order.** A row is sorted by (neighbour index, shift code); every sum — over a
   row, over a system's atoms, over a system's chunks — runs in that fixed order in one thread,
   with no atomics. Pairs beyond the cutoff add nothing, so the order does not depend on when
   the list was rebuilt.
2. **Whole chunks per span.** A CPU launch is cut into spans of thread ids run side by side
   (:func:`spans`); a kernel that writes to other atoms of its system (half rows) gets spans of
   whole chunks of a system, each chunk writing only its own copy of the per-atom arrays. Chunks
   depend on the system's size alone (:func:`~hts_mlff.engine.kernels.neighbor_matrix.chunks_of`).
3. **Lifetimes.** A Warp view (:func:`as_warp`) holds no reference to its tensor; the tensor is
   held until the next :func:`launch` returns, so a view kept longer needs its tensor kept by
   the caller. The rows' per-atom scratch is reused from pass to pass and never handed out:
   what :func:`~hts_mlff.engine.kernels.pair.pair_rows` returns is the caller's own.
4. **Per thread.** Views, held tensors, recorded launches and the kernel thread count are kept
   per thread, so two packs stepped by two threads of one worker share none of them.
5. **First launch alone.** A kernel's first launch loads (or compiles) its module on one thread.

Warp is imported lazily: without it, with a release outside :data:`TESTED_WARP_RELEASES`, or with
``HTS_MLFF_KERNELS=torch``, the engine uses its torch path, the reference the kernels are tested
against.
"""

from __future__ import annotations

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


#: Warp releases [first, last) the kernels are tested on. Older ones miscompile the cell-list
#: builder (1.15–1.17: wrong rows in ``test_cell_list_rows_of_large_systems_match_the_torch_list``;
#: 1.9: a crash), so another release runs the torch path unless ``HTS_MLFF_KERNELS=warp``.
#: Widening the range: run ``tests/engine/`` on the release and move the bound (and pyproject's).
TESTED_WARP_RELEASES = ((1, 18), (1, 20))


def warp_release_tested(version: str) -> bool:
    """True when Warp ``version`` ("1.19.0") is in :data:`TESTED_WARP_RELEASES`."""
    try:
        release = tuple(int(part) for part in version.split(".")[:2])
    except ValueError:
        return False
    first, last = TESTED_WARP_RELEASES
    return first <= release < last


@functools.cache
def _untested_release_refused(version: str) -> bool:
    """Log once that an untested Warp release runs the torch path; True (the refusal)."""
    import logging

    first, last = (".".join(map(str, bound)) for bound in TESTED_WARP_RELEASES)
    logging.getLogger(__name__).warning(
        "warp-lang %s is outside the releases the compiled kernels are tested on (>=%s,<%s): "
        "running the torch path (pip install 'warp-lang>=%s,<%s', or HTS_MLFF_KERNELS=warp to use it anyway)",
        version,
        first,
        last,
        first,
        last,
    )
    return True


def kernels_enabled(device: torch.device) -> bool:
    """True when the compiled path can run on ``device`` (a tested Warp release importable, CPU
    or a CUDA device Warp sees) and the user did not ask for the torch path
    (``HTS_MLFF_KERNELS=torch``; ``warp``: any importable release)."""
    choice = os.environ.get("HTS_MLFF_KERNELS", "auto").lower()
    if choice == "torch":
        return False
    wp = _warp()
    if wp is None:
        return False
    if choice != "warp" and not warp_release_tested(wp.__version__) and _untested_release_refused(wp.__version__):
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
#: into a launch's arguments is not freed under the kernel); ``commands``, the recorded launches
#: (:func:`launch`), whose arrays' addresses are set anew and so must not be shared by two packs.
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


_POOLS: dict[int, ThreadPoolExecutor] = {}
_LAUNCHED: set[int] = set()


#: Recorded launches kept per thread (:func:`launch`), by kernel, spans and the arguments'
#: layout, with the addresses they were recorded with.
_MAX_COMMANDS = 256
#: Replay recorded launches (True), or pack every launch afresh (False: the reference the replay
#: is tested against, ``test_a_replayed_launch_equals_a_fresh_one_bit_for_bit``).
REPLAY_LAUNCHES = True


def _argument_key(value: Any) -> tuple[Any, int | None]:
    """What a recorded launch depends on of one argument, and the array's address: an array's
    shape, strides and type (its address is set anew when it changes: each step's fresh
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
    (a launch releases the GIL), one per thread the pack was given, the calling thread taking
    one. Replay: the first launch of a kernel over given spans and argument layout (shapes,
    types, scalar values) is recorded, one ``warp.Launch`` per span
    (``warp.launch(..., record_cmd=True)``); a later launch with the same key replays those,
    with the addresses of fresh arrays set through ``Launch.set_param_at_index`` (~5 µs instead
    of ~25 µs of argument packing per span, every step; worth 6 % of a two-thread 64 × 256 LJ
    step). Only Warp's public ``Launch`` API is used. On a GPU one launch covers all.
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
    if id(kernel) not in _LAUNCHED:  # the first launch loads (or compiles) the module: not in parallel
        a, b = todo.pop(0)
        wp.launch(kernel, dim=b - a, inputs=[wp.int32(a), *inputs], device=device)
        _LAUNCHED.add(id(kernel))
        if not todo:
            return
        commands = _recorded(kernel, todo, inputs, device=device)  # the rest, this once
    else:
        commands = _replayable(kernel, todo, inputs, device=device)
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


def _replayable(kernel: Any, todo: list[Span], inputs: list, *, device: str) -> list[Any]:
    """The recorded launches of ``kernel`` over ``todo``, their arrays' addresses brought up to
    date with ``inputs``; recorded (and kept) when this kernel, these spans and this argument
    layout are new."""
    layout, addresses = zip(*(_argument_key(value) for value in inputs), strict=True) if inputs else ((), ())
    key = (id(kernel), tuple(todo), layout) if REPLAY_LAUNCHES and None not in layout else None
    cache = _local().commands
    entry = cache.get(key) if key is not None else None
    if entry is None:
        commands = _recorded(kernel, todo, inputs, device=device)
        if key is not None:
            if len(cache) >= _MAX_COMMANDS:
                cache.pop(next(iter(cache)))
            cache[key] = (commands, list(addresses))
        return commands
    commands, recorded_at = entry
    for index, address in enumerate(addresses):
        if address != recorded_at[index]:  # a fresh array of the same layout: its address set
            for command in commands:
                command.set_param_at_index(index + 1, inputs[index])
            recorded_at[index] = address
    return commands


def _recorded(kernel: Any, todo: list[Span], inputs: list, *, device: str) -> list[Any]:
    """One recorded (not yet run) launch per span: its first id, its size, the arguments."""
    wp = warp()
    return [
        wp.launch(kernel, dim=b - a, inputs=[wp.int32(a), *inputs], device=device, record_cmd=True) for a, b in todo
    ]


#: Per thread (each pack runs in its own thread of a worker): how many spans a CPU launch is cut
#: into, set by :func:`kernel_threads_for_pack` for the pack that thread runs.
_PACK_THREADS = threading.local()
#: Process-wide (torch's intra-op threads are the process's): how many packs hold the cores for
#: their kernels, and torch's own thread count before the first of them took it.
_TORCH_THREADS_LOCK = threading.Lock()
_TORCH_THREADS_HELD = 0
_TORCH_THREADS_BEFORE = 1


def kernel_threads() -> int:
    """How many spans a CPU launch is split into: the count of the pack this thread runs
    (:func:`kernel_threads_for_pack`), else the threads torch has now."""
    return max(1, getattr(_PACK_THREADS, "count", None) or torch.get_num_threads())


@contextmanager
def kernel_threads_for_pack(threads: int | None = None) -> Iterator[int]:
    """Give this thread's pack ``threads`` kernel threads (default: the threads torch had before
    any pack took them) and run torch's own operations on one while any pack holds the cores;
    restores both on exit, whatever the order in which overlapping packs end.

    Between two launches torch's OpenMP threads spin while they wait for work, so two thread
    pools on the same cores slow each other down (measured: 2 + 2 threads ran slower than one).
    Two packs of one worker (``threads_per_worker > 1``) each keep their own count; torch is given
    its threads back when the last of them ends, so a later ``torch.set_num_threads`` holds.
    """
    global _TORCH_THREADS_HELD, _TORCH_THREADS_BEFORE
    with _TORCH_THREADS_LOCK:
        if _TORCH_THREADS_HELD == 0:
            _TORCH_THREADS_BEFORE = torch.get_num_threads()
        _TORCH_THREADS_HELD += 1
        count = max(1, int(threads or _TORCH_THREADS_BEFORE))
        torch.set_num_threads(1)
    previous = getattr(_PACK_THREADS, "count", None)
    _PACK_THREADS.count = count
    try:
        yield count
    finally:
        _PACK_THREADS.count = previous
        with _TORCH_THREADS_LOCK:
            _TORCH_THREADS_HELD -= 1
            if _TORCH_THREADS_HELD == 0:
                torch.set_num_threads(_TORCH_THREADS_BEFORE)

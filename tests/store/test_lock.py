"""The run lock: exactly one holder among simultaneous starts, stale locks taken over only when provably stale."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time

import pytest

from hts_mlff.store.layout import StoreError
from hts_mlff.store.lock import acquire, lock_path, release, run_lock

N_PROCESSES = 12


def _contender(store: str, barrier, results, hold_s: float) -> None:
    barrier.wait()
    try:
        record = acquire(store)
    except StoreError:
        results.put("refused")
        return
    results.put("held")
    time.sleep(hold_s)  # overlap with every other contender
    release(store, record)


def _race(store, *, n: int = N_PROCESSES, hold_s: float = 1.0) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_contender, args=(str(store), barrier, results, hold_s)) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    return sorted(results.get(timeout=5) for _ in procs)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_simultaneous_starts_on_a_new_store_have_exactly_one_holder(tmp_path):
    for round_ in range(4):
        store = tmp_path / f"new-{round_}" / "s.zarr"  # not even its folder exists yet
        outcome = _race(store)
        assert outcome.count("held") == 1, outcome
        assert not lock_path(store).exists()  # the holder released it
        assert not store.exists()  # taking the lock creates nothing but the lock


def test_simultaneous_take_overs_of_a_stale_lock_have_exactly_one_holder(tmp_path):
    for round_ in range(3):
        store = tmp_path / f"s{round_}.zarr"
        lock_path(store).write_text(json.dumps({"host": socket.gethostname(), "pid": _dead_pid(), "since": 0.0}))
        outcome = _race(store)
        assert outcome.count("held") == 1, outcome


def test_a_live_holder_is_named_and_kept(tmp_path):
    store = tmp_path / "s.zarr"
    with run_lock(store) as record:
        assert json.loads(lock_path(store).read_text())["token"] == record["token"]
        with pytest.raises(StoreError, match=f"another run is using this store .*pid {os.getpid()}"):
            acquire(store)
    assert not lock_path(store).exists()


def test_another_hosts_lock_is_taken_only_with_force(tmp_path):
    store = tmp_path / "s.zarr"
    theirs = {"host": "node-elsewhere-17", "pid": 4242, "since": time.time(), "token": "theirs"}
    lock_path(store).write_text(json.dumps(theirs))
    with pytest.raises(StoreError, match=r"another host .*node-elsewhere-17.*--force"):
        acquire(store)
    assert json.loads(lock_path(store).read_text()) == theirs
    record = acquire(store, force=True)
    assert json.loads(lock_path(store).read_text())["token"] == record["token"]
    release(store, record)


def test_an_unreadable_lock_is_not_taken_over_silently(tmp_path):
    store = tmp_path / "s.zarr"
    lock_path(store).write_text("{not json")
    with pytest.raises(StoreError, match=r"another host|another run"):
        acquire(store)
    release(store, {"token": "someone-else"})  # only the holder's token removes a lock
    assert lock_path(store).exists()

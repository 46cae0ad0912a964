"""The run lock: one coordinator per store, taken atomically before the store is touched.

The lock is a file beside the store (``<store>.lock``, so it can be taken before the store
exists), created atomically with its whole content (a hard link from a private file, which
fails when the name exists, also on NFS): of any number of simultaneous starts exactly one
creates it. It records the holder's host, pid and a random token; only the holder (same
token) removes it.

A lock left by a killed run is taken over only when it is provably stale: it names this host
and a pid that no longer runs. Take-overs on one host are serialised by ``fcntl.flock`` on a
guard file, and the stale file is re-read under the guard, so two processes never both take
over one stale lock. A lock naming another host is never taken over silently (that run may
be alive there): ``force=True`` (``hts-mlff run --force``) does it, for a run the user knows
is dead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hts_mlff.store.layout import StoreError


def lock_path(store_path: Path) -> Path:
    """``<store>.lock`` beside the store."""
    store_path = Path(store_path)
    return store_path.with_name(store_path.name + ".lock")


def _read(lock: Path) -> dict[str, Any] | None:
    """The lock's content; {} when it is not a lock record; None when it does not exist."""
    try:
        text = lock.read_text()
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _create(lock: Path, record: dict[str, Any]) -> bool:
    """Create the lock file atomically with its whole content; False when it exists.

    The record is written to a file of its own first and hard-linked to the lock's name
    (``link`` fails when the name exists, also on NFS), so nobody ever reads a half-written lock.
    """
    tmp = lock.with_name(f".{lock.name}.{record['token']}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(record))
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, lock)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def pid_alive(pid: int) -> bool:
    """True when a process with this pid runs on this host (or cannot be signalled)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict[str, Any]) -> str:
    since = holder.get("since")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since)) if isinstance(since, int | float) else "?"
    return f"host {holder.get('host', '?')}, pid {holder.get('pid', '?')}, since {when}"


def _stale_here(holder: dict[str, Any], host: str) -> bool:
    pid = holder.get("pid")
    return holder.get("host") == host and isinstance(pid, int) and not pid_alive(pid)


@contextlib.contextmanager
def _guard(lock: Path) -> Iterator[None]:
    """Serialise take-overs of ``lock`` between processes of this host."""
    guard = lock.with_name(lock.name + ".guard")
    with open(guard, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def acquire(store_path: Path, *, force: bool = False) -> dict[str, Any]:
    """Take the run lock of ``store_path`` or raise :class:`StoreError` naming its holder.

    Returns the lock record (pass it to :func:`release`).
    """
    lock = lock_path(store_path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{store_path}: cannot create its folder ({exc})") from None
    host = socket.gethostname()
    record = {"host": host, "pid": os.getpid(), "since": time.time(), "token": secrets.token_hex(16)}
    try:
        if _create(lock, record):
            return record
        with _guard(lock):
            holder = _read(lock)
            if holder is None:
                pass  # released meanwhile
            elif _stale_here(holder, host) or force:
                lock.unlink()
            elif holder.get("host") == host:
                raise StoreError(f"{store_path}: another run is using this store ({_describe(holder)})")
            else:
                raise StoreError(
                    f"{store_path}: locked by a run on another host ({_describe(holder)}); if that run is "
                    f"dead, start again with --force (or remove {lock})"
                )
            if _create(lock, record):
                return record
    except OSError as exc:
        raise StoreError(f"{store_path}: cannot take the run lock {lock} ({exc})") from None
    holder = _read(lock) or {}
    raise StoreError(f"{store_path}: another run is using this store ({_describe(holder)})")


def release(store_path: Path, record: dict[str, Any]) -> None:
    """Remove the lock if it is still ours."""
    lock = lock_path(store_path)
    holder = _read(lock)
    if holder is not None and holder.get("token") == record.get("token"):
        lock.unlink(missing_ok=True)


@contextlib.contextmanager
def run_lock(store_path: Path, *, force: bool = False) -> Iterator[dict[str, Any]]:
    """Hold the run lock of ``store_path`` for the block."""
    record = acquire(store_path, force=force)
    try:
        yield record
    finally:
        release(store_path, record)

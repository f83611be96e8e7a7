"""One run at a time per output folder: ``<out>/.ltae-run.lock``.

The run holds an exclusive advisory lock (``flock``) on the lock file for its whole duration, and
writes its pid, host name and start time into it. A second run into the folder finds the lock held
and stops at once with :class:`RunFolderBusy` (a :class:`~ltae.data.validate.DataValidationError`,
so the CLI exits 2 with one message naming the owner).

The operating system drops the lock when its process ends, however it ends (``kill -9``
included), so a lock file whose lock is free is *stale*: the next run takes it over and says so in
a notice (naming the pid and start time of the run that left it). Unlike a pid check this cannot be
fooled by a reused pid, and two runs finding the same stale file cannot both take it over. The file
is removed when the run ends normally or with an error.

POSIX only (``fcntl``); on network file systems it relies on their lock support (NFS: yes).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path

from ltae.data.validate import DataValidationError

LOCK_NAME = ".ltae-run.lock"


class RunFolderBusy(DataValidationError):
    """Another live run owns the output folder."""


def describe(info: dict) -> str:
    """``pid N on HOST, started T, run ID``: who holds a run folder's lock."""
    return (f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {info.get('started', '?')}"
            + (f", run {info['run_id']}" if info.get("run_id") else ""))


def _read_fd(fd: int) -> dict:
    try:
        raw = os.pread(fd, 1 << 16, 0)
        info = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _busy(folder, info: dict) -> RunFolderBusy:
    who = describe(info) if info else "a run that is starting"
    return RunFolderBusy(f"the output folder is in use by another ltae run ({who})", file=str(folder),
                         hint="wait for it to finish or use another --out")


def owner(folder: str | os.PathLike) -> dict | None:
    """The lock's content (pid, host, started, run_id) if a live run holds ``folder``, else None
    (writes nothing)."""
    p = Path(folder) / LOCK_NAME
    try:
        fd = os.open(p, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_fd(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def check_free(folder: str | os.PathLike) -> None:
    """Raise :class:`RunFolderBusy` if a live run owns ``folder`` (writes nothing)."""
    info = owner(folder)
    if info is not None:
        raise _busy(folder, info)


class RunLock:
    """Context manager owning ``folder`` for one run. ``notices`` says if a stale lock was taken over."""

    def __init__(self, folder: str | os.PathLike, run_id: str | None = None):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.run_id = run_id
        self.notices: list[str] = []
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this process holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the folder's lock, or raise :class:`RunFolderBusy` naming the run that holds it; a stale
        lock file is taken over (with a notice)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = _read_fd(fd)
                os.close(fd)
                raise _busy(self.folder, info) from None
            # the file may have been removed (a run ending) between open and flock: start again
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = _read_fd(fd)
            if old:
                self.notices.append(f"took over a stale lock of {self.folder}: its run ({describe(old)}) "
                                    "ended without releasing it")
            pid = os.getpid()
            info = {"pid": pid, "host": socket.gethostname(),
                    "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "run_id": self.run_id}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
            os.fsync(fd)
            self._fd = fd
            return self

    def release(self) -> None:
        """Release the lock and remove its file (nothing if not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            try:
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    self.path.unlink()  # still holding the lock: nobody else can be using this file
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)  # releases the lock

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

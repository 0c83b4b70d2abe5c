"""The ingest lock: one change at a time to a knowledge base, across processes and hosts.

A file lock keeps apart the ingests of one data folder. With a Chroma server, which other data
folders or hosts may share, a lease, a record in Chroma, keeps those apart too: it is renewed
after every embedded batch and lapses once its holder stops renewing it.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import filelock

from rag.errors import IngestBusyError, IngestError

LEASE_ID = "ingest-lease"
_LEASE_S = 300.0        # renewed after every embedded batch; a killed ingest's lease lapses after this
_LEASE_SETTLE_S = 0.2   # two ingests taking the lease at once: the last write wins, and both read it

logger = logging.getLogger(__name__)


class IngestLock:
    """The data folder's ingest lock and, on a shared store, the lease in `records` (a Chroma collection)."""

    def __init__(self, lock_path: Path, records, shared: bool):
        self.lock_path = lock_path
        self._records = records
        self._shared = shared
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @contextmanager
    def hold(self):
        """Hold the lock (and the lease), or refuse at once with IngestBusyError."""
        lock = filelock.FileLock(str(self.lock_path), timeout=0)
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()
        except filelock.Timeout as err:
            raise IngestBusyError(
                "另一个导入正在进行: another ingest is changing this knowledge base; wait for it to finish "
                "(uploads take seconds, `fazhi ingest` of a folder minutes), then try again."
            ) from err
        except OSError as err:
            raise IngestError(
                f"Cannot take the ingest lock in the data folder ({err.strerror}): the data folder must be "
                "writable and have free space; nothing was changed."
            ) from err
        try:
            if not self._shared:  # an embedded store belongs to one data folder: its file lock is enough
                yield
                return
            self._take_lease()
            try:
                yield
            finally:
                self._release_lease()
        finally:
            lock.release()

    def renew(self) -> None:
        """Push the lease's end back (on a shared store): a long ingest calls this after every batch."""
        if self._shared:
            self._write_lease()

    def _write_lease(self) -> None:
        self._records.upsert(ids=[LEASE_ID], embeddings=[[1.0]], metadatas=[
            {"kind": "lease", "owner": self._owner, "until": time.time() + _LEASE_S}])

    def _take_lease(self) -> None:
        for attempt in ("take", "check"):
            holder = self._lease_holder()
            if holder and holder["owner"] != self._owner:
                raise IngestBusyError(
                    f"另一个导入正在进行: {holder['owner'].rsplit(':', 1)[0]} is ingesting into this knowledge "
                    f"base (a data folder sharing its Chroma store) for up to {holder['until'] - time.time():.0f} s "
                    "more; wait for it to finish, then try again."
                )
            if attempt == "take":
                self._write_lease()
                time.sleep(_LEASE_SETTLE_S)

    def _release_lease(self) -> None:
        try:
            self._records.delete(ids=[LEASE_ID], where={"owner": self._owner})
        except Exception as err:  # a full disk, a server gone: the lease lapses, or this store retakes it
            logger.warning("could not release the ingest lease (%s); it lapses in %.0f s", err, _LEASE_S)

    def _lease_holder(self) -> dict | None:
        """The live lease on this collection's ingests, if any: unexpired, and not of a dead local process."""
        got = self._records.get(ids=[LEASE_ID], include=["metadatas"])
        if not got["ids"] or got["metadatas"][0]["until"] <= time.time():
            return None
        holder = got["metadatas"][0]
        host, pid, _ = holder["owner"].rsplit(":", 2)
        if host == socket.gethostname() and not process_alive(int(pid)):
            return None  # killed mid-ingest on this machine: its rerun need not wait for the lease to lapse
        return holder


def process_alive(pid: int) -> bool:
    """Whether a process of this machine is running (one of another user's counts as running)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

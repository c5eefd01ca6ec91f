"""Keep ``vm.nr_hugepages`` as it was: XMRig run as root reserves huge pages for itself.

XMRig 6.x writes ``/sys/devices/system/node/node*/hugepages/hugepages-2048kB/nr_hugepages`` to get
the pages its RandomX dataset and scratchpads want (1168 pages for fast mode on 2 threads, 130 for
light mode) and never gives them back. ``HugePagesGuard`` records every per-node and global huge page
count before a run, writes that record to a journal file, and restores the counts afterwards - on
success, failure and Ctrl-C alike (``with`` / ``restore()``); a journal left by a process that was
killed is restored by the next guard (or ``restore_pending``). Overlapping runs (two lab processes at
once) share one journal: the counts from before the first, restored when the last one leaves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minerlens_lab.xmrig.fetch import XmrigError

GLOBAL = Path("/proc/sys/vm/nr_hugepages")
NODE_GLOB = "devices/system/node/node*/hugepages/hugepages-*kB/nr_hugepages"
SIZE_GLOB = "kernel/mm/hugepages/hugepages-*kB/nr_hugepages"
SYSFS = Path("/sys")
RESTORE_WAIT_S = 10.0
_THREADS = threading.Lock()
"""flock is per open file description, not per thread: threads of one process also take this"""


class HugePagesError(XmrigError):
    """The huge page counts could not be put back."""


@dataclass
class HugePagesState:
    counts: dict[str, int] = field(default_factory=dict)
    """path -> value of every huge-page count file (global, per size, per node and size)"""

    @property
    def total(self) -> int:
        return self.counts.get(str(GLOBAL), 0)


def _files() -> list[Path]:
    return [GLOBAL, *sorted(SYSFS.glob(SIZE_GLOB)), *sorted(SYSFS.glob(NODE_GLOB))]


def read_state() -> HugePagesState:
    counts = {}
    for f in _files():
        with contextlib.suppress(OSError, ValueError):
            counts[str(f)] = int(f.read_text().split()[0])
    return HugePagesState(counts)


def nr_hugepages() -> int:
    return int(GLOBAL.read_text().split()[0])


def _write(path: str, value: int) -> None:
    Path(path).write_text(f"{value}\n")


def restore(state: HugePagesState) -> None:
    """Put every count back: per node first (pages that are still in use are released as they are
    freed), then per size and the global count; wait until the kernel reports them back."""
    deadline = time.monotonic() + RESTORE_WAIT_S
    while True:
        wrong = {p: v for p, v in state.counts.items() if p in (now := read_state().counts) and now[p] != v}
        if not wrong:
            return
        if time.monotonic() > deadline:
            msg = f"huge page counts not restored after {RESTORE_WAIT_S:.0f}s: want {wrong}, have {read_state().counts}"
            raise HugePagesError(msg)
        for path in sorted(wrong, key=lambda p: ("/node/" not in p, p != str(GLOBAL))):
            with contextlib.suppress(OSError):
                _write(path, state.counts[path])
        time.sleep(0.05)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def _locked(journal: Path) -> Iterator[None]:
    """The journal's lock: guards of concurrent lab processes (or threads) update it one at a time."""
    journal.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(journal.with_name(f".{journal.name}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with _THREADS:
            yield
    finally:
        os.close(fd)  # releases the flock


def _read_journal(journal: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(journal.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("counts"), dict):
        journal.unlink(missing_ok=True)
        return None
    return doc


def _alive_holders(doc: dict[str, Any], *, without: str = "") -> list[dict[str, Any]]:
    """The journal's holders (guards between start and restore) whose process still runs."""
    holders = doc.get("holders")
    listed = list(holders) if isinstance(holders, list) else []
    if isinstance(doc.get("pid"), int):  # a journal of the one-run format (before overlapping runs)
        listed.append({"pid": doc["pid"], "token": "legacy"})
    return [
        h
        for h in listed
        if isinstance(h, dict) and isinstance(h.get("pid"), int) and h.get("token") != without and pid_alive(h["pid"])
    ]


def _baseline(doc: dict[str, Any]) -> HugePagesState:
    return HugePagesState({str(k): int(v) for k, v in doc["counts"].items() if isinstance(v, int)})


def _write_journal(journal: Path, holders: list[dict[str, Any]], baseline: HugePagesState) -> None:
    tmp = journal.with_name(f".{journal.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"holders": holders, "counts": baseline.counts}))
    os.replace(tmp, journal)


def restore_pending(journal: Path) -> bool:
    """Restore what a journal left by interrupted runs recorded; whether there was one to restore. A journal
    whose holders still run is left to them (the last one out restores)."""
    with _locked(journal):
        doc = _read_journal(journal)
        if doc is None or _alive_holders(doc):
            return False
        restore(_baseline(doc))
        journal.unlink(missing_ok=True)
        return True


class HugePagesGuard:
    """Context manager: record on enter (journal included), restore on exit.

    Runs may overlap (two lab processes, a bench beside the lab tests): the journal keeps the counts from
    before the *first* of them and the guards that hold it; each guard leaving takes itself off, and the
    last one out restores those counts. A holder whose process died is dropped; if none is left alive, the
    next guard restores before it records.
    """

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.before: HugePagesState | None = None
        self._token = ""

    def __enter__(self) -> HugePagesGuard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def start(self) -> HugePagesState:
        with _locked(self.journal):
            doc = _read_journal(self.journal)
            holders = _alive_holders(doc) if doc is not None else []
            if doc is not None and holders:
                baseline = _baseline(doc)  # another run holds the pages: what was there before it
            else:
                if doc is not None:  # its holders died without restoring
                    restore(_baseline(doc))
                baseline = read_state()
            self._token = uuid.uuid4().hex
            _write_journal(self.journal, [*holders, {"pid": os.getpid(), "token": self._token}], baseline)
            self.before = baseline
            return baseline

    def restore(self) -> None:
        if self.before is None:
            return
        with _locked(self.journal):
            doc = _read_journal(self.journal)
            others = _alive_holders(doc, without=self._token) if doc is not None else []
            if doc is not None and others:
                _write_journal(self.journal, others, _baseline(doc))  # the last one out restores
            else:
                restore(self.before)
                self.journal.unlink(missing_ok=True)
            self.before = None

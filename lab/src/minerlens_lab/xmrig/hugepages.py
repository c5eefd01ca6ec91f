"""Keep ``vm.nr_hugepages`` as it was: XMRig run as root reserves huge pages for itself.

XMRig 6.x writes ``/sys/devices/system/node/node*/hugepages/hugepages-2048kB/nr_hugepages`` to get
the pages its RandomX dataset and scratchpads want (1168 pages for fast mode on 2 threads, 130 for
light mode) and never gives them back. ``HugePagesGuard`` records every per-node and global huge page
count before a run, writes that record to a journal file, and restores the counts afterwards - on
success, failure and Ctrl-C alike (``with`` / ``restore()``); a journal left by a process that was
killed is restored by the next guard (or ``restore_pending``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from minerlens_lab.xmrig.fetch import XmrigError

GLOBAL = Path("/proc/sys/vm/nr_hugepages")
NODE_GLOB = "devices/system/node/node*/hugepages/hugepages-*kB/nr_hugepages"
SIZE_GLOB = "kernel/mm/hugepages/hugepages-*kB/nr_hugepages"
SYSFS = Path("/sys")
RESTORE_WAIT_S = 10.0


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


def restore_pending(journal: Path) -> bool:
    """Restore what a journal left by an interrupted run recorded; whether there was one."""
    try:
        doc = json.loads(journal.read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError):
        journal.unlink(missing_ok=True)
        return False
    if not isinstance(doc, dict):
        journal.unlink(missing_ok=True)
        return False
    owner = doc.get("pid")
    if isinstance(owner, int) and owner != os.getpid() and pid_alive(owner):
        return False  # another lab process is running XMRig now: its own guard restores
    counts = doc.get("counts")
    if isinstance(counts, dict):
        restore(HugePagesState({str(k): int(v) for k, v in counts.items() if isinstance(v, int)}))
    journal.unlink(missing_ok=True)
    return True


class HugePagesGuard:
    """Context manager: record on enter (journal included), restore on exit."""

    def __init__(self, journal: Path) -> None:
        self.journal = journal
        self.before: HugePagesState | None = None

    def __enter__(self) -> HugePagesGuard:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def start(self) -> HugePagesState:
        restore_pending(self.journal)
        self.before = read_state()
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.journal.with_name(f".{self.journal.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "counts": self.before.counts}))
        os.replace(tmp, self.journal)
        return self.before

    def restore(self) -> None:
        if self.before is None:
            return
        restore(self.before)
        self.journal.unlink(missing_ok=True)
        self.before = None

"""Thread identities the kernel's tracer remembers: ``saved_tgids`` (tid -> tgid, filled because the
instance sets ``options/record-tgid``) and ``saved_cmdlines`` (tid -> comm). They answer for threads
that exited before ``/proc/<tid>`` could be read, so short-lived threads keep their process."""

from __future__ import annotations

import time
from pathlib import Path


def _parse_pairs(text: str) -> dict[int, str]:
    out: dict[int, str] = {}
    for line in text.splitlines():
        tid, _, value = line.strip().partition(" ")
        if tid.isdigit() and value:
            out[int(tid)] = value.strip()
    return out


class KernelTaskTable:
    """Snapshot of the tracer's task tables, refreshed on a miss at most every ``refresh_s``."""

    def __init__(self, tracefs_root: Path, refresh_s: float = 0.05) -> None:
        self._root = tracefs_root
        self._refresh_s = refresh_s
        self._at = float("-inf")
        self._tgids: dict[int, str] = {}
        self._comms: dict[int, str] = {}

    def _refresh(self) -> None:
        try:
            self._tgids = _parse_pairs((self._root / "saved_tgids").read_text())
            self._comms = _parse_pairs((self._root / "saved_cmdlines").read_text())
        except OSError:
            self._tgids, self._comms = {}, {}
        self._at = time.monotonic()

    def lookup(self, tid: int) -> tuple[int, str] | None:
        if tid not in self._tgids and time.monotonic() - self._at >= self._refresh_s:
            self._refresh()
        tgid = self._tgids.get(tid)
        if tgid is None or not tgid.isdigit():
            return None
        comm = self._comms.get(tid, "")
        return int(tgid), "" if comm == "<...>" else comm

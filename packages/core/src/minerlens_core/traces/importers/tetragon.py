"""Tetragon JSON export -> syscall entries (format ``tetragon``).

Input: one ``GetEventsResponse`` per line as written by ``tetra getevents -o json`` or the
agent's JSON export (protojson with proto field names, so snake_case; camelCase names are
accepted too). Only ``process_tracepoint`` events of ``raw_syscalls``/``sys_enter`` (or
``syscalls``/``sys_enter_<name>``) are syscall entries; every other event (``process_exec``,
``process_exit``, ``process_kprobe``, other tracepoints, ``sys_exit``) is skipped silently.
A line that is not a JSON object is malformed. Fields used (``api/v1/tetragon/tetragon.proto``)::

    {"process_tracepoint": {
        "process": {"pid": 4242, "tid": 4243, "binary": "/usr/bin/xmrig",
                    "pod": {"namespace": "mining", "name": "xmrig-0", "uid": "3f1c...",
                            "container": {"id": "containerd://9b1f..."}},
                    "docker": "9b1f..."},
        "subsys": "raw_syscalls", "event": "sys_enter",
        "args": [{"long_arg": "202"}, ...]},
     "node_name": "node-1", "time": "2026-01-15T10:00:00.123456789Z"}

The syscall number is the FIRST integer argument, so the TracingPolicy must list the tracepoint's
``id`` field (``index: 4``) first. Its encoding depends on the policy's arg ``type``: ``int64`` ->
``long_arg``, ``uint64`` -> ``size_arg`` (64-bit values are JSON strings in protojson), ``int``
-> ``int_arg``, ``uint32`` -> ``uint_arg``, ``syscall64`` -> ``syscall_id: {"id": 202, "abi":
"x64"}``. An ``abi`` other than the trace architecture's (``x64`` for x86_64, ``arm64``; e.g. a
32-bit ``i386`` call) is reported as malformed, its number belonging to another table.

``tid`` defaults to ``pid`` (older Tetragon has no ``tid``); ``comm`` is the basename of
``binary`` cut to 15 chars (the kernel's comm of an exec'd binary); ``container_id`` loses its
``containerd://``-style prefix (``docker``, the 15 first digits, when there is no container
id); ``time`` (RFC 3339, UTC, ns) gives ``ts_ns``. Rows keep the file order.

Limits: a line nested deeper than Python's JSON parser allows, a number that is no int32 (pid, tid,
syscall number; ``Infinity`` included) or a time outside 1970 .. 2262 makes the line malformed, as do
pod fields that are no Kubernetes uid / namespace / name / container id (``schemas.bounds``).
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import re
from typing import Any

from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers.base import (
    NS,
    Entry,
    ImportOptions,
    LineError,
    LineParser,
    strip_runtime,
)
from minerlens_core.traces.importers.lines import LineImporter, ParserBase

_ABI = {Arch.X86_64: "x64", Arch.ARM64: "arm64"}
_INT_ARGS = ("long_arg", "size_arg", "int_arg", "uint_arg")
_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d\d-\d\d)[Tt ](?P<time>\d\d:\d\d:\d\d)(?:\.(?P<frac>\d{1,9}))?(?P<tz>[Zz]|[+-]\d\d:\d\d)"
)


def _get(obj: dict[str, Any], snake: str) -> Any:
    """A protojson field by its proto (snake_case) or JSON (camelCase) name."""
    if snake in obj:
        return obj[snake]
    head, *rest = snake.split("_")
    return obj.get(head + "".join(part.title() for part in rest))


def rfc3339_ns(text: str) -> int:
    """``2026-01-15T10:00:00.123456789Z`` -> Unix-epoch ns (exact to the ns)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        msg = f"bad time {text!r}"
        raise LineError(msg)
    zone = "+00:00" if m.group("tz") in "Zz" else m.group("tz")
    try:
        whole = dt.datetime.fromisoformat(f"{m.group('date')}T{m.group('time')}{zone}")
        seconds = int(whole.timestamp())
    except (ValueError, OverflowError, OSError):
        msg = f"bad time {text[:40]!r}"
        raise LineError(msg) from None
    return seconds * NS + int((m.group("frac") or "").ljust(9, "0"))


class _TetragonParser(ParserBase):
    def __init__(self, arch: Arch, options: ImportOptions) -> None:
        super().__init__(options)
        self.abi = _ABI[arch]
        self.arch = arch

    def feed(self, text: str) -> Entry | None:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            msg = f"invalid JSON: {exc.msg} at column {exc.colno}"
            raise LineError(msg) from None
        except RecursionError:
            msg = "JSON nested too deeply"
            raise LineError(msg) from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            msg = f"invalid JSON: {str(exc)[:80]}"
            raise LineError(msg) from None
        if not isinstance(obj, dict):
            msg = "not a JSON object"
            raise LineError(msg)
        ev = _get(obj, "process_tracepoint")
        if ev is None:
            return None
        if not isinstance(ev, dict):
            msg = "process_tracepoint is not an object"
            raise LineError(msg)
        subsys, event = ev.get("subsys"), ev.get("event")
        nr: int | None = None
        name: str | None = None
        if subsys == "raw_syscalls" and event == "sys_enter":
            nr = self._syscall_id(ev.get("args"))
        elif subsys == "syscalls" and isinstance(event, str) and event.startswith("sys_enter_"):
            name = event.removeprefix("sys_enter_")
        else:
            return None
        proc = ev.get("process")
        if not isinstance(proc, dict) or not isinstance(proc.get("pid"), int) or isinstance(proc["pid"], bool):
            msg = "process_tracepoint without process.pid"
            raise LineError(msg)
        pid = int(proc["pid"])
        tid = proc.get("tid")
        pod = _obj(proc.get("pod"))
        container = _obj(pod.get("container"))
        stamp = obj.get("time")
        return Entry(
            tid=int(tid) if isinstance(tid, int) else pid,
            pid=pid,
            nr=nr,
            name=name,
            ts_ns=rfc3339_ns(stamp) if isinstance(stamp, str) else None,
            comm=posixpath.basename(str(proc.get("binary") or ""))[:15],
            pod_uid=str(pod.get("uid") or ""),
            namespace=str(pod.get("namespace") or ""),
            pod_name=str(pod.get("name") or ""),
            container_id=strip_runtime(str(container.get("id") or "")) or str(proc.get("docker") or ""),
        )

    def _syscall_id(self, args: Any) -> int:
        for arg in args if isinstance(args, list) else []:
            if not isinstance(arg, dict):
                continue
            sid = _get(arg, "syscall_id")
            if isinstance(sid, dict):
                abi = str(sid.get("abi") or self.abi)
                if abi != self.abi:
                    msg = f"syscall ABI {abi!r} is not the trace's {self.arch.value} ({self.abi!r})"
                    raise LineError(msg)
                return _number(sid.get("id", 0))
            for key in _INT_ARGS:
                value = _get(arg, key)
                if value is not None:
                    return _number(value)
        msg = "raw_syscalls/sys_enter event without a syscall-number argument (policy needs index 4 first)"
        raise LineError(msg)


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, str) and len(value) > 20):
        msg = f"syscall number {str(value)[:24]!r} is not an integer in range"
        raise LineError(msg)
    try:
        nr = int(value)
    except (TypeError, ValueError, OverflowError):
        msg = f"syscall number {repr(value)[:40]} is not an integer"
        raise LineError(msg) from None
    if nr < 0:
        msg = f"negative syscall number {nr}"
        raise LineError(msg)
    return nr


class TetragonImporter(LineImporter):
    name = "tetragon"

    def new_parser(self, arch: Arch, source_name: str, options: ImportOptions) -> LineParser:
        return _TetragonParser(arch, options)

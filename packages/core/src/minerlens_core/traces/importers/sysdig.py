"""sysdig text output and the LID-DS data sets -> syscall entries (formats ``sysdig`` = ``lid-ds``).

Each line is one sysdig event; only ENTER events (direction ``>``) are syscall entries, exit
events (``<``) are skipped silently, as are sysdig's non-syscall events (``switch``,
``procexit``, ``signaldeliver``, ``page_fault``, ``drop``, ``container``, ...; see
:data:`NON_SYSCALL_EVENTS`) and ``<NA>`` types. The layout is recognised per line, one of:

1. sysdig default, ``-p "%evt.num %evt.outputtime %evt.cpu %proc.name (%thread.tid) %evt.dir %evt.type %evt.info"``
   (newer sysdig on a terminal prints ``(%proc.pid.%thread.tid)``, also accepted)::

       5352242 11:54:08.853533065 0 ssh-agent (13314) > stat
       5352242 11:54:08.853533065 0 ssh-agent (13300.13314) > stat

2. sysdig ``-pc`` / ``-pk``, ``%evt.num %evt.outputtime %evt.cpu %container.name (%container.id)
   %proc.name (%thread.tid:%thread.vtid) %evt.dir %evt.type %evt.info`` (with ``-pk`` the first
   name is ``%k8s.pod.name``; it is not stored, ``container.id`` is, ``host`` meaning none)::

       157 10:26:12.386475431 1 xmrig-7f9c (4f2a9b1c3d5e) xmrig (88121:7) > futex addr=7F... op=128

3. LID-DS 2021 ``.sc`` files, ``-p "%evt.rawtime %user.uid %proc.pid %proc.name %thread.tid
   %syscall.type %evt.dir %evt.args"`` (``dataloader/syscall_2021.py``)::

       1631209047761484608 33 24312 apache2 24318 read > fd=13(<4t>172.17.0.1:39012->172.17.0.3:80) size=8000

4. LID-DS 2019 ``.txt`` files, ``%evt.num %evt.time %evt.cpu %user.uid %proc.name %thread.tid
   %evt.dir %evt.type %evt.args`` (``dataloader/syscall_2019.py``)::

       1277 00:00:03.637545815 6 33 apache2 1735 > read fd=13(<4t>172.17.0.1:39012->172.17.0.3:80) size=8000

Times: ``%evt.outputtime`` / ``%evt.time`` default to the time of day (``HH:MM:SS.nnnnnnnnn``,
local zone of the capture host: see ``ImportOptions.date``/``tz``); ``-ta`` gives Unix seconds
(``1631209047.761484608``), taken as is; relative modes (``-tr``, ``-td``, ``-tD``) give no
time (``ts_ns`` null). ``%evt.rawtime`` is Unix-epoch ns. sysdig's generic event ``syscall``
(unsupported syscalls) uses its ``nativeID=<nr>`` argument. Names sysdig uses that the syscall
table lacks are kept (``nr`` null) and counted in ``meta.extra["unknown_syscalls"]``.

``%proc.name`` and ``%container.name`` may hold spaces but at most 256 characters: longer ones make
the line malformed (and keep matching linear in the line length).
"""

from __future__ import annotations

import re

from minerlens_core.schemas.bounds import INT64_MAX
from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers.base import (
    Entry,
    ImportOptions,
    LineError,
    LineParser,
    parse_int,
)
from minerlens_core.traces.importers.lines import LineImporter, ParserBase
from minerlens_core.traces.importers.timestamps import decimal_ns

NON_SYSCALL_EVENTS = frozenset(
    {
        "switch",
        "procexit",
        "signaldeliver",
        "page_fault",
        "drop",
        "sysdigevent",
        "scapevent",
        "container",
        "cpu_hotplug",
        "notification",
        "infra",
        "tracer",
        "procinfo",
        "pluginevent",
        "asyncevent",
        "k8s",
        "mesos",
        "NA",
        "<NA>",
    }
)

_TAIL = r" (?P<dir>[<>]) (?P<type>\S+)(?: .*)?"
_NAME = r".{1,256}?"  # comm / container name: bounded, so a line that does not match fails in linear time
_LAYOUTS = (
    re.compile(
        rf"(?P<num>\d+) (?P<time>\S+) (?P<cpu>\d+) (?P<cname>{_NAME}) \((?P<cid>[^()\s]*)\) "
        rf"(?P<comm>{_NAME}) \((?P<tid>\d+):(?P<vtid>\d+)\)" + _TAIL
    ),
    re.compile(
        rf"(?P<num>\d+) (?P<time>\S+) (?P<cpu>\d+) (?P<comm>{_NAME}) \((?:(?P<pid>\d+)\.)?(?P<tid>\d+)\)" + _TAIL
    ),
    re.compile(
        rf"(?P<raw>\d{{16,20}}) (?P<uid>\S+) (?P<pid>\d+) (?P<comm>{_NAME}) (?P<tid>\d+) "
        r"(?P<type>\S+) (?P<dir>[<>])(?: .*)?"
    ),
    re.compile(
        rf"(?P<num>\d+) (?P<time>\d\d:\d\d:\d\d\.\d+) (?P<cpu>\d+) (?P<uid>\S+) (?P<comm>{_NAME}) (?P<tid>\d+)" + _TAIL
    ),
)
_NATIVE_ID = re.compile(r"\bnativeID=(\d+)")
_EPOCH = re.compile(r"\d{10,}\.\d+")


class _SysdigParser(ParserBase):
    def __init__(self, options: ImportOptions) -> None:
        super().__init__(options)
        self._order = list(_LAYOUTS)

    def feed(self, text: str) -> Entry | None:
        m = self._match(text)
        if m is None:
            msg = "not a sysdig / LID-DS event line"
            raise LineError(msg)
        kind = m.group("type")
        if m.group("dir") == "<" or kind in NON_SYSCALL_EVENTS:
            return None
        nr: int | None = None
        name: str | None = kind
        if kind == "syscall":
            native = _NATIVE_ID.search(text)
            if native is None:
                return None
            nr, name = parse_int(native.group(1), "nativeID", 0), None
        groups = m.groupdict()
        cid = groups.get("cid") or ""
        pid = groups.get("pid")
        return Entry(
            tid=parse_int(m.group("tid"), "tid"),
            pid=parse_int(pid, "pid") if pid else None,
            nr=nr,
            name=name,
            ts_ns=self._ts(groups),
            comm=m.group("comm"),
            container_id="" if cid == "host" else cid,
        )

    def _match(self, text: str) -> re.Match[str] | None:
        for i, layout in enumerate(self._order):
            m = layout.fullmatch(text)
            if m is not None:
                if i:  # the layout that matched is tried first next time
                    self._order.insert(0, self._order.pop(i))
                return m
        return None

    def _ts(self, groups: dict[str, str | None]) -> int | None:
        raw = groups.get("raw")
        if raw:
            return parse_int(raw, "%evt.rawtime", 0, INT64_MAX)
        stamp = groups.get("time") or ""
        if ":" in stamp:
            return self.clock.ns(stamp)
        if _EPOCH.fullmatch(stamp):
            return decimal_ns(stamp)
        return None


class SysdigImporter(LineImporter):
    name = "sysdig"

    def new_parser(self, arch: Arch, source_name: str, options: ImportOptions) -> LineParser:
        return _SysdigParser(options)

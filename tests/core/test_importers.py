"""Importers against real captures (strace, perf) and documented-layout samples (sysdig, Tetragon).

Expected counts come from the files themselves by independent means (strace's own ``-C``
summary, plain regex counts of the raw lines), never from the importer under test.
"""

from __future__ import annotations

import datetime as dt
import gzip
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from minerlens_core.errors import TraceFormatError
from minerlens_core.syscalls import Arch, syscall_number
from minerlens_core.traces import write_trace
from minerlens_core.traces.importers import FORMATS, ImportOptions, get_importer, import_files
from minerlens_core.traces.importers.base import MAX_KEPT_MALFORMED

DATA = Path(__file__).resolve().parents[1] / "data" / "importers"
STRACE = DATA / "strace"
PERF = DATA / "perf"
UTC = dt.UTC
X86 = Arch.X86_64
WORKLOAD_GETPPID = [2, 3, 6, 9]  # threads.py: main thread 2, workers 3, 6, 9


def rows(path: Path | list[Path], fmt: str, **kw: object) -> list[dict[str, object]]:
    paths = path if isinstance(path, list) else [path]
    return import_files(paths, fmt, arch=X86, **kw).table.to_pylist()  # type: ignore[arg-type]


def summary_calls(path: Path) -> Counter[str]:
    """Per-syscall ``calls`` column of strace's -C summary table at the end of the file."""
    calls: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*", line)
        if m and m.group(2) != "total":
            calls[m.group(2)] = int(m.group(1))
    return calls


def epoch_ns(day: dt.date, stamp: str, tz: dt.tzinfo) -> int:
    hms, _, frac = stamp.partition(".")
    h, m, s = (int(x) for x in hms.split(":"))
    base = dt.datetime(day.year, day.month, day.day, h, m, s, tzinfo=tz)
    return int(base.timestamp()) * 10**9 + int(frac.ljust(9, "0"))


def getppid_per_tid(table_rows: list[dict[str, object]]) -> Counter[object]:
    return Counter(r["tid"] for r in table_rows if r["syscall"] == "getppid")


# --------------------------------------------------------------------------------------- strace


@pytest.mark.parametrize("name", ["ls_f_tt_C.txt", "threads_f_tt_C.txt", "true_decorated.txt"])
def test_strace_counts_match_strace_own_summary(name: str) -> None:
    path = STRACE / name
    res = import_files([path], "strace", arch=X86)
    got = Counter(res.table.column("syscall").to_pylist())
    # strace -C does not count calls that never return
    never_return = {k: got.pop(k) for k in ("exit", "exit_group") if k in got}
    assert got == summary_calls(path)
    assert never_return.get("exit_group") == 1
    assert res.meta.malformed_lines == 0
    assert res.malformed == []
    assert res.meta.source == "strace"
    assert None not in res.table.column("nr").to_pylist()


def test_strace_unfinished_resumed_counted_once_at_unfinished_line() -> None:
    path = STRACE / "threads_f_tt_C.txt"
    text = path.read_text()
    assert "<unfinished ...>" in text
    assert "resumed>" in text
    starts = Counter(re.findall(r"^\d+\s+\S+ (\w+)\(", text, re.MULTILINE))
    table_rows = rows(path, "strace")
    assert Counter(r["syscall"] for r in table_rows) == starts
    # the row of an interrupted futex has the time of its <unfinished ...> line
    line = next(ln for ln in text.splitlines() if ln.endswith("<unfinished ...>") and " futex(" in ln)
    tid, stamp = int(line.split()[0]), line.split()[1]
    day = dt.datetime.fromtimestamp(path.stat().st_mtime).astimezone().date()
    want = epoch_ns(day, stamp, dt.datetime.now().astimezone().tzinfo or UTC)
    assert any(r["tid"] == tid and r["ts_ns"] == want and r["syscall"] == "futex" for r in table_rows)


@pytest.mark.parametrize("name", ["threads_f_tt_C.txt", "threads_f_tt_stderr.txt"])
def test_strace_threads_attributed_to_their_tids(name: str) -> None:
    path = STRACE / name
    text = path.read_text()
    table_rows = rows(path, "strace")
    main = next(r["tid"] for r in table_rows if r["syscall"] == "execve")
    per_tid = getppid_per_tid(table_rows)
    assert sorted(per_tid.values()) == WORKLOAD_GETPPID
    assert per_tid[main] == 2
    prefixed = {int(a or b) for a, b in re.findall(r"^(?:\[pid\s+(\d+)\]|(\d+))\s", text, re.MULTILINE)}
    assert {r["tid"] for r in table_rows} == prefixed
    assert {r["pid"] for r in table_rows} == {main}  # CLONE_THREAD children share the thread group
    assert {r["comm"] for r in table_rows} == {"python3"}


def test_strace_stderr_lines_without_prefix_go_to_the_task_alone_at_that_time() -> None:
    path = STRACE / "threads_f_tt_stderr.txt"
    text = path.read_text()
    unprefixed = [ln for ln in text.splitlines() if re.match(r"\d\d:\d\d:\d\d\.\d+ \w+\(", ln)]
    assert len(unprefixed) > 300  # the main thread before its first clone and after the joins
    table_rows = rows(path, "strace")
    main = table_rows[0]["tid"]
    assert main != 0
    assert sum(r["tid"] == main for r in table_rows) == len(unprefixed) + len(
        re.findall(rf"^\[pid\s+{main}\] \S+ \w+\(", text, re.MULTILINE)
    )


def test_strace_single_process_stderr_has_no_tid_unless_given() -> None:
    path = STRACE / "sleep_f_tt_stderr.txt"
    res = import_files([path], "strace", arch=X86)
    assert set(res.table.column("tid").to_pylist()) == {0}
    assert "tid_note" in res.meta.extra
    given = rows(path, "strace", default_tid=4242)
    assert {r["tid"] for r in given} == {4242}
    assert sum(r["syscall"] == "clock_nanosleep" for r in given) == len(
        re.findall(r" clock_nanosleep\(", path.read_text())
    )
    assert {r["comm"] for r in given} == {"sleep"}  # from the execve


def test_strace_ff_files_take_tid_from_name_and_epoch_stamps() -> None:
    files = sorted((STRACE / "ff").iterdir())
    res = import_files(files, "strace", arch=X86)
    table_rows = res.table.to_pylist()
    suffixes = [int(f.name.rsplit(".", 1)[1]) for f in files]
    assert sorted({r["tid"] for r in table_rows}) == sorted(suffixes)
    assert sorted(getppid_per_tid(table_rows).values()) == WORKLOAD_GETPPID
    assert getppid_per_tid(table_rows)[min(suffixes)] == 2  # the main thread has the lowest tid
    assert res.meta.has_time
    offset = 0
    for f in files:  # rows in file order, each file's rows in its line order
        text = f.read_text()
        calls = re.findall(r"^(\d+)\.(\d+) \w+\(", text, re.MULTILINE)
        chunk = table_rows[offset : offset + len(calls)]
        assert [r["ts_ns"] for r in chunk] == [int(s) * 10**9 + int(us) * 1000 for s, us in calls]
        assert {r["tid"] for r in chunk} == {int(f.name.rsplit(".", 1)[1])}
        offset += len(calls)
    assert offset == len(table_rows)


def test_strace_decorations_number_matches_name() -> None:
    path = STRACE / "true_decorated.txt"
    table_rows = rows(path, "strace")
    numbers = [int(n) for n in re.findall(r"^\d+ \S+ \[\s*(\d+)\] \[[0-9a-f]+\] \w+\(", path.read_text(), re.M)]
    assert [r["nr"] for r in table_rows] == numbers
    assert all(r["nr"] == syscall_number(str(r["syscall"]), X86) for r in table_rows)


def test_strace_time_of_day_date_zone_and_rollover(tmp_path: Path) -> None:
    path = STRACE / "ls_f_tt_C.txt"
    first = path.read_text().split()[1]
    day = dt.date(2030, 6, 1)
    got = rows(path, "strace", date=day, tz=UTC)
    assert got[0]["ts_ns"] == epoch_ns(day, first, UTC)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert rows(path, "strace", date=day, tz=plus2)[0]["ts_ns"] == epoch_ns(day, first, UTC) - 2 * 3600 * 10**9
    # no date: the file's modification date (local zone) is the date of the last stamp
    copy = tmp_path / "ls.txt"
    shutil.copy(path, copy)
    noon = dt.datetime(2031, 2, 3, 12, 0).astimezone()
    os.utime(copy, (noon.timestamp(), noon.timestamp()))
    res = import_files([copy], "strace", arch=X86)
    assert res.table.column("ts_ns")[0].as_py() == epoch_ns(noon.date(), first, noon.tzinfo or UTC)
    assert "file modification time" in res.meta.extra["time_of_day"]
    # a capture crossing midnight: the date given is the first stamp's, the mtime the last one's
    lines = ["7 23:59:59.900000 getpid() = 7", "7 00:00:00.100000 getpid() = 7"]
    imp = get_importer("strace")
    opts = ImportOptions(date=day, tz=UTC)
    ts = imp.parse(lines, arch=X86, options=opts).table.column("ts_ns").to_pylist()
    assert ts == [epoch_ns(day, "23:59:59.9", UTC), epoch_ns(day + dt.timedelta(days=1), "00:00:00.1", UTC)]
    opts = ImportOptions(end_date=day, tz=UTC)
    ts = imp.parse(lines, arch=X86, options=opts).table.column("ts_ns").to_pylist()
    assert ts == [epoch_ns(day - dt.timedelta(days=1), "23:59:59.9", UTC), epoch_ns(day, "00:00:00.1", UTC)]
    # parsed lines without any date: no time at all
    res2 = imp.parse(lines, arch=X86)
    assert res2.table.column("ts_ns").to_pylist() == [None, None]
    assert not res2.meta.has_time


def test_strace_line_variants() -> None:
    lines = [
        "[pid  4242] 1795762664.928514 getppid() = 1",
        "4243  1795762664.928600 syscall_0x1b3(0x1, 0x2) = -1 ENOSYS (Function not implemented)",
        "4243  1795762664.928700 read(3, <unfinished ...>",
        "4244  1795762664.928701 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED} ---",
        "4244  1795762664.928702 +++ exited with 0 +++",
        "4245  1795762664.928703 +++ killed by SIGKILL +++",
        '4243  1795762664.928800 <... read resumed>"x", 1) = 1',
        "4246  1795762664.928900 <... write resumed>) = 1",
        "     0.000123 getpid() = 7",
        "strace: Process 4247 attached",
        "% time     seconds  usecs/call     calls    errors syscall",
    ]
    res = get_importer("strace").parse(lines, arch=X86)
    got = [(r["tid"], r["nr"], r["syscall"], r["ts_ns"]) for r in res.table.to_pylist()]
    assert got[:4] == [
        (4242, 110, "getppid", 1795762664928514000),
        (4243, 0x1B3, syscall_name_or_sys(0x1B3), 1795762664928600000),
        (4243, 0, "read", 1795762664928700000),
        (4246, 1, "write", 1795762664928900000),  # orphan resumed: counted at its own line
    ]
    assert got[4][2:] == ("getpid", None)  # -r relative stamps are no time
    assert len(got) == 5
    assert res.meta.malformed_lines == 0


def test_strace_second_stamps_and_only_non_syscall_lines(tmp_path: Path) -> None:
    lines = [
        '06:57:44 execve("/bin/true", ["/bin/true"], 0x7ffe43be6c28 /* 39 vars */) = 0',
        "06:57:45 brk(NULL) = 0x1",
    ]
    res = get_importer("strace").parse(lines, arch=X86, options=ImportOptions(date=dt.date(2030, 1, 2), tz=UTC))
    day = dt.date(2030, 1, 2)
    assert res.table.column("ts_ns").to_pylist() == [epoch_ns(day, "06:57:44", UTC), epoch_ns(day, "06:57:45", UTC)]
    exits = tmp_path / "threads.4321"  # an -ff file of a thread killed before any syscall
    exits.write_text("+++ killed by SIGKILL +++\nnot strace\n")
    with pytest.raises(
        TraceFormatError, match=r"no syscall entries in .*threads\.4321 \(strace format; 1 lines malformed\)"
    ):
        import_files([exits], "strace")
    both = import_files([exits, STRACE / "ls_f_tt_C.txt"], "strace", arch=X86)
    assert both.meta.malformed_lines == 1
    assert both.table.num_rows == import_files([STRACE / "ls_f_tt_C.txt"], "strace", arch=X86).table.num_rows


def syscall_name_or_sys(nr: int) -> str:
    from minerlens_core.syscalls import syscall_name

    return syscall_name(nr, X86)


def test_strace_garbage_lines_reported_with_line_numbers(tmp_path: Path) -> None:
    src = (STRACE / "threads_f_tt_C.txt").read_text().splitlines(keepends=True)
    garbage = {3: "this is not strace output\n", 10: "@@@@ ####\n", 50: "12345\n"}
    out: list[str] = []
    for line in src:
        while len(out) + 1 in garbage:
            out.append(garbage[len(out) + 1])
        out.append(line)
    path = tmp_path / "mixed.txt"
    path.write_text("".join(out))
    res = import_files([path], "strace", arch=X86)
    assert [(m.line_no, m.text, m.source) for m in res.malformed] == [
        (n, t.rstrip("\n"), str(path)) for n, t in sorted(garbage.items())
    ]
    assert all(m.reason == "not a strace syscall line" for m in res.malformed)
    assert res.meta.malformed_lines == 3
    assert res.table.num_rows == import_files([STRACE / "threads_f_tt_C.txt"], "strace", arch=X86).table.num_rows


# ----------------------------------------------------------------------------------------- perf


def perf_nr_counts(path: Path) -> Counter[int]:
    return Counter(int(n) for n in re.findall(r"raw_syscalls:sys_enter: NR (\d+) ", path.read_text()))


@pytest.mark.parametrize("name", ["ls_default.txt", "ls_pid_tid_nocpu.txt"])
def test_perf_raw_syscalls_counts_tids_and_time(name: str) -> None:
    path = PERF / name
    text = path.read_text()
    res = import_files([path], "perf", arch=X86)
    table_rows = res.table.to_pylist()
    assert Counter(r["nr"] for r in table_rows) == perf_nr_counts(path)
    assert len(table_rows) == len(text.splitlines())
    tid = int(re.search(r"ls (?:\d+/)?(\d+) ", text).group(1))  # type: ignore[union-attr]
    assert {(r["tid"], r["pid"], r["comm"]) for r in table_rows} == {(tid, tid, "ls")}
    assert {r["ts_ns"] for r in table_rows} == {None}
    assert not res.meta.has_time
    first = re.search(r" (\d+)\.(\d+): raw_syscalls", text)
    assert first is not None
    assert res.meta.extra["perf_clock_first_s"] == f"{first.group(1)}.{first.group(2)}"
    shifted = rows(path, "perf", epoch_offset_ns=1_700_000_000 * 10**9)
    want = 1_700_000_000 * 10**9 + int(first.group(1)) * 10**9 + int(first.group(2)) * 1000
    assert shifted[0]["ts_ns"] == want


def test_perf_comm_with_spaces() -> None:
    path = PERF / "comm_spaces.txt"
    table_rows = rows(path, "perf")
    renamed = [r for r in table_rows if r["comm"] == "my miner 1"]
    assert sum(r["syscall"] == "getppid" for r in renamed) == 7
    assert len(renamed) == len(re.findall(r"^\s*my miner 1 \d+ ", path.read_text(), re.M))
    assert Counter(r["nr"] for r in table_rows) == perf_nr_counts(path)


def test_perf_syscalls_tracepoints_by_name() -> None:
    path = PERF / "ls_sys_enter_tp.txt"
    table_rows = rows(path, "perf")
    assert Counter(r["syscall"] for r in table_rows) == Counter(
        re.findall(r"syscalls:sys_enter_(\w+):", path.read_text())
    )
    assert all(r["nr"] == syscall_number(str(r["syscall"]), X86) for r in table_rows)


def test_perf_variants_and_garbage() -> None:
    lines = [
        "# ========",
        "# captured on: x",
        "  tokio-runtime-w  9001/9002  [003]  1234.000000001:  raw_syscalls:sys_enter: NR 232 (5, 7ffd, 80, 0, 0, 0)",
        "  tokio-runtime-w  9002  1234.000000002:  raw_syscalls:sys_exit: NR 232 = 1",
        "  xmrig 77  1234.5: sched:sched_switch: prev_comm=xmrig",
        "garbage here",
        "  xmrig 77  1234.6: raw_syscalls:sys_enter: NR -1 (0)",
    ]
    res = get_importer("perf").parse(lines, arch=X86, options=ImportOptions(epoch_offset_ns=0))
    assert [(r["pid"], r["tid"], r["comm"], r["syscall"], r["ts_ns"]) for r in res.table.to_pylist()] == [
        (9001, 9002, "tokio-runtime-w", "epoll_wait", 1234_000000001)
    ]
    assert [(m.line_no, m.reason) for m in res.malformed] == [
        (6, "not a perf script sample line"),
        (7, "negative syscall number -1"),
    ]


# ----------------------------------------------------------------------------- sysdig / LID-DS


def test_sysdig_default_layout() -> None:
    day = dt.date(2026, 1, 15)
    table_rows = rows(DATA / "sysdig" / "default.txt", "sysdig", date=day, tz=UTC)
    assert [(r["tid"], r["pid"], r["comm"], r["syscall"]) for r in table_rows] == [
        (4242, 4242, "xmrig", "futex"),
        (4243, 4243, "xmrig", "sched_yield"),
        (4244, 4244, "xmrig", "getrandom"),  # generic event, nativeID=318
        (5001, 5001, "Web Content", "read"),
        (4245, 4242, "xmrig", "futex"),  # (pid.tid)
        (4243, 4243, "xmrig", "sched_yield"),
        (4242, 4242, "xmrig", "write"),
    ]
    assert table_rows[0]["ts_ns"] == epoch_ns(day, "23:59:59.999000100", UTC)
    assert table_rows[2]["ts_ns"] == epoch_ns(day + dt.timedelta(days=1), "00:00:00.000100000", UTC)


def test_sysdig_container_layout() -> None:
    table_rows = rows(DATA / "sysdig" / "container.txt", "sysdig", date=dt.date(2026, 1, 15), tz=UTC)
    assert [(r["tid"], r["comm"], r["syscall"], r["container_id"]) for r in table_rows] == [
        (88121, "xmrig", "futex", "4f2a9b1c3d5e"),
        (1022, "sshd", "read", ""),
        (88122, "xmrig", "sched_yield", "4f2a9b1c3d5e"),
    ]


@pytest.mark.parametrize("fmt", ["lid-ds", "sysdig", "LID-DS"])
def test_lidds_2021(fmt: str) -> None:
    path = DATA / "sysdig" / "lidds_2021.sc"
    table_rows = rows(path, fmt)
    enters = re.findall(r"^(\d+) \S+ (\d+) \S+ (\d+) (\w+) >", path.read_text(), re.M)
    assert [(r["ts_ns"], r["pid"], r["tid"], r["syscall"]) for r in table_rows] == [
        (int(ts), int(pid), int(tid), name) for ts, pid, tid, name in enters
    ]
    assert {r["comm"] for r in table_rows} == {"apache2"}


def test_lidds_2019() -> None:
    path = DATA / "sysdig" / "lidds_2019.txt"
    day = dt.date(2019, 3, 1)
    table_rows = rows(path, "lid-ds", date=day, tz=UTC)
    assert [(r["tid"], r["syscall"]) for r in table_rows] == [
        (1735, "read"),
        (1735, "stat"),
        (1736, "open"),
        (1736, "writev"),
    ]
    assert table_rows[0]["ts_ns"] == epoch_ns(day, "00:00:03.637545815", UTC)


def test_sysdig_epoch_stamps_unknown_names_and_garbage() -> None:
    lines = [
        "1 1631209047.761484608 0 xmrig (42) > mmap2 addr=0",
        "2 1631209047.761484700 0 xmrig (42) < mmap2 res=0",
        "not sysdig at all",
        "3 0.000001000 0 xmrig (42) > getpid",
    ]
    res = get_importer("sysdig").parse(lines, arch=X86)
    assert [(r["ts_ns"], r["nr"], r["syscall"]) for r in res.table.to_pylist()] == [
        (1631209047761484608, None, "mmap2"),  # not an x86_64 syscall: kept, counted
        (None, 39, "getpid"),  # relative stamp (-tr): no time
    ]
    assert res.meta.extra["unknown_syscalls"] == {"mmap2": 1}
    assert [(m.line_no, m.reason) for m in res.malformed] == [(3, "not a sysdig / LID-DS event line")]


# ------------------------------------------------------------------------------------- tetragon


def test_tetragon_sample() -> None:
    path = DATA / "tetragon" / "raw_syscalls.jsonl"
    res = import_files([path], "tetragon", arch=X86)
    table_rows = res.table.to_pylist()
    t0 = int(dt.datetime(2026, 1, 15, 10, tzinfo=UTC).timestamp()) * 10**9
    assert [(r["pid"], r["tid"], r["nr"], r["syscall"], r["ts_ns"]) for r in table_rows] == [
        (4242, 4242, 202, "futex", t0 + 1),
        (4242, 4243, 24, "sched_yield", t0 + 500),
        (4242, 4243, 24, "sched_yield", t0 + 1000),
        (4242, 4244, 318, "getrandom", t0 + 2000),
        (4242, 4242, 257, "openat", t0 + 4000),
        (4250, 4250, 202, "futex", t0 + 5000),  # no tid: the pid
        (4242, 4242, 1, "write", t0 + 6000 - 3600 * 10**9),  # +01:00
    ]
    assert {(r["namespace"], r["pod_name"], r["pod_uid"]) for r in table_rows} == {
        ("mining", "xmrig-0", "3f1c2b7e-8d4a-4b6e-9a51-2c0d7e6f1a90")
    }
    assert {r["container_id"] for r in table_rows} == {
        "9b1f0c6a2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
    }
    assert [r["comm"] for r in table_rows][-2] == "a-very-long-bin"
    assert [(m.line_no, m.reason) for m in res.malformed] == [
        (11, "syscall ABI 'i386' is not the trace's x86_64 ('x64')")
    ]
    assert res.meta.has_time


def test_tetragon_malformed_lines() -> None:
    good = (DATA / "tetragon" / "raw_syscalls.jsonl").read_text().splitlines()[1]
    lines = [
        good[: len(good) // 2],  # truncated JSON
        "[1, 2, 3]",
        good,
        '{"process_tracepoint": {"subsys": "raw_syscalls", "event": "sys_enter", "args": [], '
        '"process": {"pid": 1}}, "time": "2026-01-15T10:00:00Z"}',
        '{"process_tracepoint": {"subsys": "raw_syscalls", "event": "sys_enter", '
        '"args": [{"longArg": "39"}], "process": {"pid": 7}}, "time": "yesterday"}',
        '{"processTracepoint": {"subsys": "raw_syscalls", "event": "sys_enter", '
        '"args": [{"longArg": "39"}], "process": {"pid": 7}}, "time": "2026-01-15T10:00:00Z"}',
    ]
    res = get_importer("tetragon").parse(lines, arch=X86)
    assert res.table.num_rows == 2
    assert res.table.column("syscall").to_pylist() == ["futex", "getpid"]
    reasons = {m.line_no: m.reason for m in res.malformed}
    assert reasons[1].startswith("invalid JSON")
    assert reasons[2] == "not a JSON object"
    assert "syscall-number argument" in reasons[4]
    assert reasons[5] == "bad time 'yesterday'"
    assert res.meta.malformed_lines == 4


# ---------------------------------------------------------------------------------------- names


def test_names_sample_and_bad_tokens() -> None:
    res = import_files([DATA / "names" / "xmrig_head.txt"], "names", arch=X86, default_tid=9)
    assert res.table.column("syscall").to_pylist() == (
        [
            "execve",
            "brk",
            "arch_prctl",
            "mmap",
            "access",
            "openat",
            "newfstatat",
            "close",
            "mmap",
            "close",
            "openat",
            "read",
        ]
    )
    assert set(res.table.column("tid").to_pylist()) == {9}
    assert not res.meta.has_time
    assert res.meta.seconds is None
    bad = get_importer("names").parse(["read write", "read frobnicate -3", "sys_enter_close"], arch=X86)
    assert bad.table.column("syscall").to_pylist() == ["read", "write", "close"]
    assert [(m.line_no, m.reason) for m in bad.malformed] == [
        (2, "not a syscall name or number of x86_64: 'frobnicate', '-3'")
    ]


# ----------------------------------------------------------------------------- files and errors


def test_missing_directory_empty_binary_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match=r"nope\.txt: no such file"):
        import_files([tmp_path / "nope.txt"], "strace")
    with pytest.raises(TraceFormatError, match="is a directory"):
        import_files([tmp_path], "strace")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(TraceFormatError, match="empty"):
        import_files([empty], "strace")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(TraceFormatError, match=r"blob\.bin: binary file"):
        import_files([binary], "perf")
    perf_data = tmp_path / "perf.data"
    perf_data.write_bytes(b"PERFILE2" + b"\0" * 100)
    with pytest.raises(TraceFormatError, match="perf script"):
        import_files([perf_data], "perf")
    with pytest.raises(TraceFormatError, match="unknown trace format 'ktrace'"):
        import_files([empty], "ktrace")
    with pytest.raises(TraceFormatError, match="no input files"):
        import_files([], "strace")


def test_all_garbage_file_says_how_many_lines_were_malformed(tmp_path: Path) -> None:
    path = tmp_path / "garbage.txt"
    path.write_text("hello\nworld\n\nfoo bar\n")
    with pytest.raises(TraceFormatError, match=r"all 3 non-blank lines are malformed \(line 1: not a strace"):
        import_files([path], "strace")
    json_path = tmp_path / "truncated.jsonl"
    json_path.write_text('{"process_tracepoint": {"subsys": "raw_sys\n')
    with pytest.raises(TraceFormatError, match="all 1 non-blank lines are malformed"):
        import_files([json_path], "tetragon")


def test_kept_malformed_lines_are_capped_but_all_counted(tmp_path: Path) -> None:
    path = tmp_path / "noisy.txt"
    path.write_text("garbage\n" * (MAX_KEPT_MALFORMED + 500) + "getpid\n")
    res = import_files([path], "names", arch=X86)
    assert res.table.num_rows == 1
    assert res.meta.malformed_lines == MAX_KEPT_MALFORMED + 500
    assert len(res.malformed) == MAX_KEPT_MALFORMED


def test_files_concatenate_in_order_with_overrides_and_gzip(tmp_path: Path) -> None:
    a, b = DATA / "sysdig" / "lidds_2021.sc", DATA / "tetragon" / "raw_syscalls.jsonl"
    gz = tmp_path / "lidds_2021.sc.gz"
    gz.write_bytes(gzip.compress(a.read_bytes()))
    plain = import_files([a, a], "lid-ds", arch=X86)
    zipped = import_files([gz, a], "lid-ds", arch=X86)
    assert zipped.table.equals(plain.table)
    assert plain.table.num_rows == 10
    assert plain.meta.extra["files"] == [str(a), str(a)]
    res = import_files([b], "tetragon", arch=X86, pod_uid="u-1", namespace="ns", pod_name="p", container_id="c")
    assert {(r["pod_uid"], r["namespace"], r["pod_name"], r["container_id"]) for r in res.table.to_pylist()} == {
        ("u-1", "ns", "p", "c")
    }
    assert [m.source for m in res.malformed] == [str(b)]


def test_parquet_round_trip(tmp_path: Path) -> None:
    res = import_files([DATA / "tetragon" / "raw_syscalls.jsonl"], "tetragon", arch=X86)
    out = write_trace(tmp_path / "t.parquet", res.table, res.meta.model_copy(update={"label": "miner"}))
    back = import_files([out, out], "parquet", pod_name="renamed")
    assert back.table.num_rows == 2 * res.table.num_rows
    assert back.meta.label == "miner"
    assert back.meta.source == "tetragon"
    assert set(back.table.column("pod_name").to_pylist()) == {"renamed"}
    assert back.table.column("syscall").to_pylist() == res.table.column("syscall").to_pylist() * 2
    with pytest.raises(TraceFormatError, match="format 'parquet'"):
        import_files([out], "strace")


def test_formats_registry() -> None:
    assert set(FORMATS) == {"strace", "perf", "sysdig", "lid-ds", "tetragon", "names", "parquet"}
    for fmt in FORMATS:
        if fmt != "parquet":
            assert get_importer(fmt).name in {"strace", "perf", "sysdig", "tetragon", "names"}

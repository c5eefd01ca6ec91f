"""Importers never end in a traceback: out-of-range numbers, deep JSON, bad encodings and huge lines are
malformed lines (with the reason) or a ``TraceFormatError``, in bounded time and memory.

Every case here was a traceback (or a hang) before: the issue's mutated files (``OverflowError`` in
strace, perf, sysdig, LID-DS and Tetragon, ``RecursionError`` in Tetragon) and what the fuzzers
(``tests/fuzz``) found next. The valid line of each file proves the rest of the file still imports.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest
from minerlens_core.errors import TraceFormatError
from minerlens_core.syscalls import Arch
from minerlens_core.traces.importers import ImportResult, import_files
from minerlens_core.traces.importers.base import MAX_LINE_CHARS, MAX_ROLLOVERS, MAX_UNKNOWN_NAMES

X86 = Arch.X86_64
HUGE = "9" * 30
ENORMOUS = "9" * 5000  # int() refuses more than 4300 digits (ValueError, not OverflowError)

STRACE_OK = '100  06:57:21.387282 read(3, "", 4096) = 0'
PERF_OK = "ls 12655 [001]   675.264274: raw_syscalls:sys_enter: NR 12 (0, 7ffd4e5df6ac, 0, 37f, 0, 0)"
SYSDIG_OK = "5352242 11:54:08.853533065 0 ssh-agent (13314) > stat"
LIDDS_OK = "1631209047761484608 33 24312 apache2 24318 read > fd=13 size=8000"


def _tetragon(**proc: object) -> str:
    process = {"pid": 4242, "tid": 4243, "binary": "/usr/bin/xmrig", **proc}
    event = {"process": process, "subsys": "raw_syscalls", "event": "sys_enter", "args": [{"long_arg": "202"}]}
    return json.dumps({"process_tracepoint": event, "node_name": "n1", "time": "2026-01-15T10:00:00.123456789Z"})


def _import(tmp_path: Path, fmt: str, *lines: str, name: str = "t.txt") -> ImportResult:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    return import_files([path], fmt, arch=X86)


def _one_bad(result: ImportResult, *needles: str) -> str:
    assert result.meta.malformed_lines == 1, result.malformed
    reason = result.malformed[0].reason
    assert not reason.startswith("parser error"), reason
    for n in needles:
        assert n in reason, reason
    return reason


@pytest.mark.parametrize(
    ("fmt", "good", "bad", "needle"),
    [
        ("strace", STRACE_OK, f'[pid {HUGE}] 06:57:21.387282 read(3, "", 4096) = 0', "pid"),
        ("strace", STRACE_OK, f"[pid {ENORMOUS}] read(3) = 0", "not a number in range"),
        ("strace", STRACE_OK, f"100  {HUGE}.5 read(3) = 0", "time"),
        ("strace", STRACE_OK, f"100  syscall_{HUGE}(1) = 0", "syscall number"),
        ("strace", STRACE_OK, "100  sys_99999999999(1) = 0", "out of range"),
        ("perf", PERF_OK, f"ls {HUGE} [001] 675.264274: raw_syscalls:sys_enter: NR 12 (0)", "tid"),
        ("perf", PERF_OK, f"ls {ENORMOUS} [001] 675.264274: raw_syscalls:sys_enter: NR 12 (0)", "tid"),
        ("perf", PERF_OK, f"ls 1 [001] 675.264274: raw_syscalls:sys_enter: NR {HUGE} (0)", "syscall number"),
        ("perf", PERF_OK, f"ls 1/{HUGE} 675.264274: raw_syscalls:sys_enter: NR 12 (0)", "tid"),
        ("sysdig", SYSDIG_OK, f"5352242 11:54:08.853533065 0 ssh-agent ({HUGE}) > stat", "tid"),
        ("sysdig", SYSDIG_OK, f"5352242 {HUGE}.5 0 ssh-agent (1) > stat", "time"),
        ("sysdig", SYSDIG_OK, f"5352242 11:54:08.853533065 0 a (1) > syscall nativeID={HUGE}", "nativeID"),
        ("lid-ds", LIDDS_OK, "99999999999999999999 33 24312 apache2 24318 read > fd=13", "rawtime"),
        ("lid-ds", LIDDS_OK, f"1631209047761484608 33 24312 apache2 {HUGE} read > fd=13", "tid"),
        ("tetragon", _tetragon(), _tetragon(pid=10**30), "pid"),
        ("tetragon", _tetragon(), _tetragon(tid=2**63), "tid"),
        ("tetragon", _tetragon(), _tetragon().replace('"202"', f'"{HUGE}"'), "syscall number"),
        ("tetragon", _tetragon(), _tetragon().replace('"202"', "Infinity"), "syscall number"),
        ("tetragon", _tetragon(), _tetragon().replace('"202"', "true"), "syscall number"),
        ("tetragon", _tetragon(), _tetragon().replace("2026-01-15", "2026-13-45"), "bad time"),
        ("tetragon", _tetragon(), _tetragon().replace("2026-01-15", "1900-01-15"), "out of range"),
        ("tetragon", _tetragon(), '{"a": ' + "9" * 5000 + "}", "invalid JSON"),
        ("names", "read write", f"read {HUGE}", "syscall number"),
        ("names", "read write", "read ² ³", "not a syscall name"),
    ],
)
def test_numbers_out_of_range_are_malformed_lines(tmp_path: Path, fmt: str, good: str, bad: str, needle: str) -> None:
    result = _import(tmp_path, fmt, good, bad, good)
    _one_bad(result, needle)
    assert result.table.num_rows >= 2
    result.table.validate(full=True)


def test_deep_json_is_a_malformed_line(tmp_path: Path) -> None:
    result = _import(tmp_path, "tetragon", _tetragon(), "[" * 60_000, "{" + '"a":{' * 5000)
    assert result.meta.malformed_lines == 2
    assert result.malformed[0].reason == "JSON nested too deeply"
    assert result.table.num_rows == 1


def test_tetragon_pod_identity_must_fit_the_contract(tmp_path: Path) -> None:
    pod = {"namespace": "a/b", "name": "x", "uid": "u1", "container": {"id": "containerd://c1"}}
    ok = {"namespace": "mining", "name": "xmrig-0", "uid": "3f1c-1", "container": {"id": "containerd://9b1f"}}
    result = _import(tmp_path, "tetragon", _tetragon(pod=ok), _tetragon(pod=pod))
    _one_bad(result, "pod namespace 'a/b'")
    row = result.table.to_pylist()[0]
    assert (row["namespace"], row["pod_name"], row["pod_uid"], row["container_id"]) == (
        "mining",
        "xmrig-0",
        "3f1c-1",
        "9b1f",
    )


@pytest.mark.parametrize(
    ("fmt", "good", "attack"),
    [
        ("sysdig", SYSDIG_OK, "1 1 1 " + "a (1) " * 12_000),  # was quadratic: 18 s for a 64 KiB line
        ("sysdig", SYSDIG_OK, "1 1 1 a (b) " * 5_000),
        ("strace", STRACE_OK, '1  execve("' + '\\"' * 30_000),  # was quadratic in the execve path search
        ("strace", STRACE_OK, "1  prctl(PR_SET_NAME, " * 3_000),
        ("perf", PERF_OK, "x 1 " * 16_000),
    ],
)
def test_adversarial_lines_import_in_linear_time(tmp_path: Path, fmt: str, good: str, attack: str) -> None:
    started = time.perf_counter()
    result = _import(tmp_path, fmt, good, attack[:MAX_LINE_CHARS], good)
    assert time.perf_counter() - started < 2.0
    assert result.table.num_rows >= 2


def test_huge_lines_are_malformed_and_read_in_bounded_pieces(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("w") as f:
        f.write("read\n")
        f.write("x" * (50 * MAX_LINE_CHARS) + "\n")  # 3 MiB, one line
        f.write("write\n")
        f.write("y" * (MAX_LINE_CHARS + 1))  # no final newline
    result = import_files([path], "names", arch=X86)
    assert result.table.column("syscall").to_pylist() == ["read", "write"]
    assert [m.line_no for m in result.malformed] == [2, 4]
    assert all(m.reason == f"line longer than {MAX_LINE_CHARS} characters" for m in result.malformed)
    assert all(len(m.text) <= 300 for m in result.malformed)


def test_bad_encodings_and_nul_bytes(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"read\n\xff\xfe\xfa write\n" + b"a" * 9000 + b"\nclose\x00open\nexit\n")
    result = import_files([path], "names", arch=X86)
    assert result.table.column("syscall").to_pylist() == ["read", "exit"]
    reasons = [m.reason for m in result.malformed]
    assert any("not a syscall name" in r for r in reasons)  # the replaced bytes are not a name
    assert "NUL byte in a text line" in reasons
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes("read write\n".encode("utf-16"))
    with pytest.raises(TraceFormatError, match="NUL bytes"):
        import_files([utf16], "names", arch=X86)


def test_broken_gzip_is_a_trace_format_error(tmp_path: Path) -> None:
    data = gzip.compress(("read\n" * 10_000).encode())
    path = tmp_path / "t.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceFormatError, match="read error"):
        import_files([path], "names", arch=X86)


def test_time_of_day_rollovers_are_bounded(tmp_path: Path) -> None:
    lines = []
    for _ in range(MAX_ROLLOVERS + 2):
        lines += ["1  23:00:00.000000 read(3) = 0", "1  01:00:00.000000 read(3) = 0"]
    import datetime as dt

    path = tmp_path / "roll.txt"
    path.write_text("\n".join(lines) + "\n")
    result = import_files([path], "strace", arch=X86, date=dt.date(2026, 1, 1), tz=dt.UTC)
    assert result.meta.malformed_lines > 0
    assert {m.reason for m in result.malformed} == {
        f"more than {MAX_ROLLOVERS} midnight rollovers of time-of-day stamps"
    }
    ts = result.table.column("ts_ns").to_pylist()
    assert all(0 <= t < 2**63 for t in ts)
    with pytest.raises(TraceFormatError, match="outside 1970"):
        import_files([path], "strace", arch=X86, date=dt.date(9999, 1, 1), tz=dt.UTC)


def test_unknown_names_are_counted_in_bounded_memory(tmp_path: Path) -> None:
    lines = [f"1  06:57:21.387282 nosuchcall{i}(3) = 0" for i in range(MAX_UNKNOWN_NAMES + 50)]
    result = _import(tmp_path, "strace", *lines)
    unknown = result.meta.extra["unknown_syscalls"]
    assert len(unknown) == MAX_UNKNOWN_NAMES + 1
    assert unknown["(other)"] == 50
    assert sum(unknown.values()) == MAX_UNKNOWN_NAMES + 50


def test_absurd_file_modification_time_drops_the_date_not_the_import(tmp_path: Path) -> None:
    import os

    path = tmp_path / "t.txt"
    path.write_text(STRACE_OK + "\n")
    try:
        os.utime(path, (2**40, 2**40))  # year ~36800
    except (OverflowError, OSError):
        pytest.skip("this filesystem cannot store such a time")
    result = import_files([path], "strace", arch=X86)
    assert result.table.column("ts_ns").to_pylist() == [None]
    assert "ts_ns dropped" in result.meta.extra["time_of_day"]

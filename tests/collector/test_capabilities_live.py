"""Least privilege (issue #14 item 5): the Linux capabilities each capture source needs, measured.

Every case runs a short snippet in a child that ``setpriv`` starts with exactly the listed capabilities
(bounding and inheritable sets cut to them, and for a non-root uid the ambient set too), so the child's
effective set is exactly that list; the child reports its ``CapEff`` and the test checks it. The snippets
use the collector's own sources: ``EbpfSource`` counting a process in an emulated pod, ``TracefsSource`` and
``StraceSource`` capturing a process, and ``scan_fds`` (fd kinds of the resource samples and fd tagging).

Measured (kernel 6.18, the table in docs/deploy.md#collector-privileges):

* eBPF: CAP_BPF + CAP_PERFMON, nothing else (no CAP_SYS_RESOURCE: BPF memory is charged to the memory
  cgroup since 5.11, not to RLIMIT_MEMLOCK, which the child sets to 0; no CAP_SYS_ADMIN, no CAP_DAC_*: the
  cgroup tree and BTF are world-readable). Without either, loading fails with EPERM and the error names
  what is missing.
* tracefs: as uid 0 no capability at all (tracefs is ``0700 root``; the owner passes); another uid needs
  CAP_DAC_OVERRIDE; CAP_SYS_ADMIN does not help (it is needed only to mount tracefs).
* strace: CAP_SYS_PTRACE to attach to a process holding capabilities the collector does not.
* /proc fd links (fd kinds): CAP_SYS_PTRACE for a process with other capabilities or another uid, plus
  CAP_DAC_READ_SEARCH to list the ``fd`` directory of another uid.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from minerlens_collector.agent.tracefs import is_available
from minerlens_collector.tools.local_pod import LocalPod

from tests.kernel import CGROUP_ROOT, require_ebpf
from tests.programs import build

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start children with chosen capabilities"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux)"),
]

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
CAP_BITS = {
    "dac_override": 1,
    "dac_read_search": 2,
    "sys_ptrace": 19,
    "sys_admin": 21,
    "perfmon": 38,
    "bpf": 39,
}
CHILD_TIMEOUT_S = 30.0

PRELUDE = """
import json, sys
def say(**kw):
    eff = next(l for l in open("/proc/self/status") if l.startswith("CapEff:")).split()[1]
    print(json.dumps({"cap_eff": int(eff, 16), "uid": __import__("os").geteuid(), **kw}), flush=True)
"""

EBPF_SNIPPET = (
    PRELUDE
    + """
from pathlib import Path
from minerlens_collector.agent.discovery import scan_pods
from minerlens_collector.agent.ebpf import BpfError, EbpfSource
from minerlens_core.syscalls import host_arch, syscall_number
import resource
resource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))  # BPF memory is charged to the memory cgroup (>= 5.11)
root, pod_uid, cid = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
src = EbpfSource(root, sample_budget=0)
try:
    src.start()
except BpfError as e:
    say(error=str(e), errno=e.errno)
    sys.exit(0)
try:
    scan = scan_pods(root)
    src.set_streams({k: d for k, d in scan.dirs.items() if k[0] == pod_uid})
    src.read_window()
    say(ready=True, missing=len(src.missing))
    sys.stdin.readline()  # the workload ran meanwhile
    win = src.read_window()
    key = (pod_uid, cid)
    say(calls=win.calls(key), getppid=win.calls(key, syscall_number("getppid", host_arch())))
finally:
    src.stop()
"""
)

TRACEFS_SNIPPET = (
    PRELUDE
    + """
import os, subprocess, time
import numpy as np
from minerlens_collector.agent.tracefs import TracefsSource
from minerlens_collector.events import RawEvents
from minerlens_core.errors import CaptureError
from minerlens_core.syscalls import host_arch, syscall_number
exe, n = sys.argv[1], int(sys.argv[2])
src = TracefsSource(f"mlcaps{os.getpid()}", buffer_kb=1024)
try:
    src.start()
except CaptureError as e:
    say(error=str(e))
    sys.exit(0)
try:
    p = subprocess.Popen(["/bin/sh", "-c", 'read _; exec "$0" "$1"', exe, str(n)], stdin=subprocess.PIPE)
    while open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "S":
        time.sleep(0.005)  # the shell is at its `read` (its start-up getppid is done)
    src.add_pids([p.pid])
    p.communicate(b"\\n", timeout=20)
    ev = RawEvents.concat([src.drain() for _ in range(3)])
    mine = (ev.tid == p.pid) & (ev.nr == syscall_number("getppid", host_arch()))
    say(getppid=int(np.count_nonzero(mine)), lost=sum(src.loss_delta().values()))
finally:
    src.stop()
"""
)

STRACE_SNIPPET = (
    PRELUDE
    + """
import time
from minerlens_collector.agent.strace_source import StraceSource
from minerlens_collector.events import RawEvents
from minerlens_core.syscalls import host_arch, syscall_number
pid = int(sys.argv[1])
src = StraceSource()
src.start()
try:
    src.add_pids([pid])
    tracer = next(l for l in open(f"/proc/{pid}/status") if l.startswith("TracerPid:")).split()[1]
    say(ready=True, attached=tracer != "0")
    parts, deadline = [], time.monotonic() + 20  # read while the target runs: a full FIFO would stall it
    while not src.finished and time.monotonic() < deadline:
        parts.append(src.poll(0.05))
finally:
    src.stop()
ev = RawEvents.concat([*parts, src.poll(0)])
say(getppid=int(((ev.tid == pid) & (ev.nr == syscall_number("getppid", host_arch()))).sum()))
"""
)

FDS_SNIPPET = (
    PRELUDE
    + """
from minerlens_collector.agent.fds import scan_fds
out = {}
for pid in map(int, sys.argv[1:]):
    scan = scan_fds("/proc", pid)
    out[str(pid)] = None if scan is None else len(scan.kinds)
say(fds=out)
"""
)


# -- running a child with chosen capabilities -------------------------------------------------------


def _mask(caps: Sequence[str]) -> int:
    return sum(1 << CAP_BITS[c] for c in caps)


def _setpriv(caps: Sequence[str], uid: int = 0) -> list[str]:
    """``setpriv`` argv: exactly ``caps`` (effective = permitted = bounding = inheritable), as ``uid``."""
    spec = ",".join(["-all", *(f"+{c}" for c in caps)])
    argv = ["setpriv", f"--inh-caps={spec}", f"--bounding-set={spec}"]
    if uid:
        argv += [f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        if caps:  # a non-root uid keeps capabilities across exec only as ambient ones
            argv.append("--ambient-caps=" + ",".join(f"+{c}" for c in caps))
    return [*argv, "--"]


class Child:
    """A snippet under ``setpriv``; JSON lines in, killed after ``CHILD_TIMEOUT_S`` whatever happens."""

    def __init__(self, caps: Sequence[str], snippet: str, args: Sequence[object], uid: int = 0) -> None:
        self.caps = list(caps)
        argv = [*_setpriv(caps, uid), sys.executable, "-c", snippet, *map(str, args)]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.stderr = ""
        self._timer = threading.Timer(CHILD_TIMEOUT_S, self.proc.kill)
        self._timer.start()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            pytest.fail(f"child with {self.caps} printed nothing (rc {self.proc.returncode}): {self.stderr}")
        msg: dict[str, Any] = json.loads(line)
        assert msg["cap_eff"] == _mask(self.caps), f"CapEff {msg['cap_eff']:#x}, wanted exactly {self.caps}"
        return msg

    def send(self, line: str = "go") -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        if self._timer.finished.is_set() and self.proc.returncode is not None:
            return  # closed already
        try:
            _, self.stderr = self.proc.communicate(timeout=CHILD_TIMEOUT_S)
        finally:
            self._timer.cancel()
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- eBPF --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ebpf_ok() -> None:
    require_ebpf()


@pytest.fixture(scope="module")
def getppid_loop() -> Path:
    return build("getppid_loop")


@pytest.fixture
def pod() -> Iterator[LocalPod]:
    with LocalPod("caps", "least-privilege") as p:
        yield p


def test_ebpf_needs_only_bpf_and_perfmon(ebpf_ok: None, pod: LocalPod, getppid_loop: Path) -> None:
    n = 20_000
    with Child(["bpf", "perfmon"], EBPF_SNIPPET, [CGROUP_ROOT, pod.uid, pod.container_id]) as child:
        first = child.read()
        assert first.get("ready"), first
        assert first["missing"] == 0  # the pod's cgroup was found and resolved to its id
        sp = pod.spawn([str(getppid_loop), str(n), "1"])
        assert sp.proc.wait(timeout=30) == 0
        child.send()
        result = child.read()
    assert result["getppid"] == n  # in-kernel counting is exact
    assert result["calls"] >= n


@pytest.mark.parametrize(
    ("caps", "lacking"), [(["perfmon"], "CAP_BPF"), (["bpf"], "CAP_PERFMON")], ids=["perfmon-only", "bpf-only"]
)
def test_ebpf_without_bpf_or_perfmon_fails_with_eperm(
    ebpf_ok: None, pod: LocalPod, caps: list[str], lacking: str
) -> None:
    with Child(caps, EBPF_SNIPPET, [CGROUP_ROOT, pod.uid, pod.container_id]) as child:
        result = child.read()
    assert result.get("errno") == errno.EPERM, result
    assert f"lacks {lacking}" in result["error"]
    assert "CAP_BPF + CAP_PERFMON" in result["error"]


# -- tracefs -----------------------------------------------------------------------------------------

tracefs_only = pytest.mark.skipif(not is_available(), reason="tracefs (with raw_syscalls) not available")


def _tracefs(caps: list[str], uid: int, exe: Path, n: int) -> dict[str, Any]:
    with Child(caps, TRACEFS_SNIPPET, [exe, n], uid=uid) as child:
        result = child.read()
    instances = Path("/sys/kernel/tracing/instances")  # the child removed its instance, whatever happened
    leftover = instances / f"mlcaps{child.proc.pid}"
    if leftover.exists():
        leftover.rmdir()
        pytest.fail(f"tracefs instance {leftover} left behind")
    assert result["uid"] == uid
    return result


@tracefs_only
@pytest.mark.parametrize(("caps", "uid"), [([], 0), (["dac_override"], NOBODY)], ids=["root-no-caps", "dac_override"])
def test_tracefs_works_as_root_without_capabilities_or_with_dac_override(
    caps: list[str], uid: int, getppid_loop: Path
) -> None:
    n = 5_000
    result = _tracefs(caps, uid, getppid_loop, n)
    assert "error" not in result, result
    assert result["getppid"] == n
    assert result["lost"] == 0


@tracefs_only
@pytest.mark.parametrize("caps", [[], ["sys_admin"]], ids=["no-caps", "sys_admin"])
def test_tracefs_without_uid0_or_dac_override_fails_clearly(caps: list[str], getppid_loop: Path) -> None:
    probe = [*_setpriv(caps, NOBODY), sys.executable, "-c", "import minerlens_collector.agent.tracefs"]
    if subprocess.run(probe, cwd="/", capture_output=True, check=False).returncode != 0:
        # a checkout inside a 0700 directory (mktemp -d): uid 65534 cannot even import the collector
        pytest.skip(f"uid {NOBODY} cannot read this checkout's virtualenv ({sys.prefix})")
    result = _tracefs(caps, NOBODY, getppid_loop, 10)
    assert "error" in result, result
    assert "no permission to use tracefs" in result["error"]
    assert "CAP_DAC_OVERRIDE" in result["error"]


# -- strace ------------------------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
@pytest.mark.parametrize(("caps", "attached"), [([], False), (["sys_ptrace"], True)], ids=["no-caps", "sys_ptrace"])
def test_strace_needs_sys_ptrace_for_a_process_with_more_capabilities(
    caps: list[str], attached: bool, getppid_loop: Path
) -> None:
    n = 2_000
    # the target runs as full root (like a pod's root process with capabilities the collector has not)
    target = subprocess.Popen(
        ["/bin/sh", "-c", 'read _; exec "$0" "$1" </dev/null', str(getppid_loop), str(n)], stdin=subprocess.PIPE
    )
    try:
        with Child(caps, STRACE_SNIPPET, [target.pid]) as child:
            first = child.read()
            assert first.get("ready"), first
            assert first["attached"] is attached
            target.communicate(b"\n", timeout=30)
            assert target.returncode == 0
            result = child.read()
    finally:
        if target.poll() is None:
            target.kill()
            target.wait()
    assert result["getppid"] == (n if attached else 0)


# -- /proc (fd kinds of resource samples and fd tagging) ---------------------------------------------


@pytest.mark.parametrize(
    ("caps", "readable"),
    [
        (["bpf", "perfmon"], set()),
        (["bpf", "perfmon", "sys_ptrace"], {"root"}),
        (["bpf", "perfmon", "sys_ptrace", "dac_read_search"], {"root", "nobody"}),
    ],
    ids=["bpf+perfmon", "+sys_ptrace", "+sys_ptrace+dac_read_search"],
)
def test_fd_links_need_sys_ptrace_and_dac_read_search(caps: list[str], readable: set[str]) -> None:
    # a root process holding every capability, and one of another uid (both with stdin/stdout/stderr open)
    targets = {
        "root": subprocess.Popen(["sleep", "30"]),
        "nobody": subprocess.Popen(["sleep", "30"], user=NOBODY, group=NOBODY, extra_groups=[]),
    }
    try:
        # a dumpable process's /proc/<pid> belongs to its uid (a non-dumpable one's to root): the case measured
        assert os.stat(f"/proc/{targets['nobody'].pid}/fd").st_uid == NOBODY
        with Child(caps, FDS_SNIPPET, [p.pid for p in targets.values()]) as child:
            fds = child.read()["fds"]
    finally:
        for p in targets.values():
            p.kill()
            p.wait()
    seen = {name for name, p in targets.items() if fds[str(p.pid)]}
    assert seen == readable, fds
    # without the capabilities the scan says "unreadable" (None), never "no fds" (an empty scan)
    assert all(fds[str(p.pid)] is None for name, p in targets.items() if name not in readable), fds

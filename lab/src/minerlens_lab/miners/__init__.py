"""The lab's miners: one C miner (``c/``), four proof-of-work families, many ways of running it.

Families: ``miner-randomx`` (Monero's RandomX through librandomx), ``miner-scrypt`` (Litecoin's
scrypt N=1024 r=1 p=1 through OpenSSL), ``miner-sha256d`` (Bitcoin's double SHA-256 with midstate),
``miner-cryptonight`` (a CryptoNight-like 2 MiB scratchpad loop). Variants: thread count, yielding
(sched_yield or a sleep duty cycle), a pod CPU quota, a renamed binary, a miner hidden in a web pod,
and syscall-noise injection. See README.md in this directory.
"""

from __future__ import annotations

from dataclasses import replace

from minerlens_lab.miners.workload import MinerConfig, MinerWorkload
from minerlens_lab.workload import Workload

__all__ = ["MinerConfig", "MinerWorkload", "miner_workloads"]

_FAMILIES = {
    # family: (algorithm, what it stands for, the harmless name its renamed variant uses)
    "miner-randomx": ("rx/0", "XMRig mining Monero (RandomX, light mode)", "nginx-cache"),
    "miner-scrypt": ("scrypt", "cpuminer mining a Litecoin-style scrypt coin", "php-fpm"),
    "miner-sha256d": ("sha256d", "cpuminer mining a Bitcoin-style double-SHA-256 coin", "systemd-journal"),
    "miner-cryptonight": ("cn-like", "an old XMRig/xmr-stak mining CryptoNight (CryptoNight-like)", "kworker-events"),
}

# family -> variants beyond 1t/2t/renamed: (variant, config changes, cpu limit, description)
_EXTRA: dict[str, list[tuple[str, dict[str, object], float | None, str]]] = {
    "miner-randomx": [
        ("1t-yield", {"threads": 1, "yield_mode": "sched"}, None, "1 thread, sched_yield() after every hash"),
        ("throttle-50", {}, 0.5, "all threads under a 0.5-core pod limit"),
        (
            "hidden-web",
            {"threads": 1, "hidden_web": True},
            None,
            "a web pod (python http.server, under load) with the miner started in the background by its entrypoint",
        ),
        ("noise-50", {"noise": 0.5}, None, "a noise thread makes 50% of the process's syscalls"),
        (
            "fullmem",
            {"randomx_mode": "fast"},
            None,
            "XMRig's fast mode: builds the 2080 MiB dataset first (about a minute on 2 cores, no share before that)",
        ),
    ],
    "miner-scrypt": [
        ("1t-yield", {"threads": 1, "yield_mode": "sched"}, None, "1 thread, sched_yield() after every hash"),
        ("throttle-25", {}, 0.25, "all threads under a 0.25-core pod limit"),
        ("sleep-50", {"yield_mode": "sleep", "duty": 0.5}, None, "hashes half of the time, sleeps the rest"),
        ("noise-70", {"noise": 0.7}, None, "a noise thread makes 70% of the process's syscalls"),
    ],
    "miner-sha256d": [
        ("2t-yield", {"threads": 2, "yield_mode": "sched"}, None, "2 threads, sched_yield() every 4096 hashes"),
        ("throttle-25", {}, 0.25, "all threads under a 0.25-core pod limit"),
        ("throttle-12", {}, 0.125, "all threads under a 0.125-core pod limit"),
        (
            "hidden-web",
            {"threads": 1, "hidden_web": True},
            None,
            "a web pod (python http.server, under load) with the miner started in the background by its entrypoint",
        ),
        ("noise-90", {"noise": 0.9}, None, "a noise thread makes 90% of the process's syscalls"),
    ],
    "miner-cryptonight": [
        ("1t-yield", {"threads": 1, "yield_mode": "sched"}, None, "1 thread, sched_yield() after every hash"),
        ("throttle-12", {}, 0.125, "all threads under a 0.125-core pod limit"),
        ("throttle-50", {}, 0.5, "all threads under a 0.5-core pod limit"),
        ("sleep-25", {"yield_mode": "sleep", "duty": 0.25}, None, "hashes a quarter of the time, sleeps the rest"),
        ("noise-70", {"noise": 0.7}, None, "a noise thread makes 70% of the process's syscalls"),
    ],
}


def miner_workloads() -> list[Workload]:
    out: list[Workload] = []
    for family, (algo, what, disguise) in _FAMILIES.items():
        base = MinerConfig(algo=algo)
        variants: list[tuple[str, dict[str, object], float | None, str]] = [
            ("1t", {"threads": 1}, None, "1 worker thread"),
            ("2t", {"threads": 2}, None, "2 worker threads"),
            ("renamed", {"disguise": disguise}, None, f"the binary copied to and run as {disguise!r}"),
            *_EXTRA[family],
        ]
        for variant, changes, cpu_limit, description in variants:
            config = replace(base, **changes)  # type: ignore[arg-type]
            out.append(
                MinerWorkload(
                    f"{family}-{variant}",
                    family,
                    config,
                    variant=variant,
                    description=f"{what}: {description}",
                    cpu_limit=cpu_limit,
                    min_seconds_for_shares=120.0 if config.randomx_mode == "fast" else 8.0,
                )
            )
    return out

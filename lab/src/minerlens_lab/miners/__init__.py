"""The lab's miners: the C miner (``c/``) in four proof-of-work families, and the real XMRig.

C-miner families (implementation ``minerlens-c``): ``miner-randomx`` (Monero's RandomX through
librandomx, XMRig's structure), ``miner-cryptonight`` (a CryptoNight-like 2 MiB scratchpad loop, an
older XMRig), ``miner-scrypt`` (Litecoin's scrypt through OpenSSL, cpuminer's structure),
``miner-sha256d`` (Bitcoin's double SHA-256 with midstate, cpuminer's structure). Each entry runs
twice for 60 s; the variants are the ones that add information next to the real XMRig entries
(``minerlens_lab.xmrig``, family ``miner-xmrig``). See README.md in this directory.
"""

from __future__ import annotations

from minerlens_lab.miners.workload import MinerConfig, MinerWorkload
from minerlens_lab.workload import Workload

__all__ = ["MinerConfig", "MinerWorkload", "c_miner_workloads", "miner_workloads"]

_FAMILIES = {
    # family: (algorithm, the real miner it stands for)
    "miner-randomx": ("rx/0", "XMRig mining Monero (RandomX light mode; XMRig's thread/syscall structure)"),
    "miner-cryptonight": ("cn-like", "an older XMRig mining CryptoNight (a CryptoNight-like hash; XMRig's structure)"),
    "miner-scrypt": ("scrypt", "cpuminer mining a Litecoin-style scrypt coin (cpuminer's structure)"),
    "miner-sha256d": ("sha256d", "cpuminer mining a Bitcoin-style double-SHA-256 coin (cpuminer's structure)"),
}

# (family, variant, config changes, cpu limit, description, subsets)
_ENTRIES: list[tuple[str, str, dict[str, object], float | None, str, tuple[str, ...]]] = [
    ("miner-randomx", "2t", {"threads": 2}, None, "2 threads, sched_yield() after every hash (XMRig's default)", ()),
    (
        "miner-randomx",
        "no-yield",
        {"threads": (2, 1), "yield_mode": "none"},
        None,
        "hashing threads make no syscall (XMRig's --cpu-no-yield)",
        ("ci",),
    ),
    (
        "miner-randomx",
        "sleep-50",
        {"threads": (2, 1), "yield_mode": "sleep", "duty": 0.5},
        None,
        "hashes half of each 100 ms and sleeps the rest (a CPU-capped cryptojacking deployment)",
        (),
    ),
    (
        "miner-randomx",
        "throttle-25",
        {"threads": (2, 1)},
        0.25,
        "all threads under a 0.25-core pod quota (cgroup cpu.max)",
        (),
    ),
    (
        "miner-randomx",
        "hidden-web",
        {"threads": 1, "hidden_web": True},
        None,
        "a web pod (python http.server, under load) with the miner started in the background by its entrypoint",
        (),
    ),
    (
        "miner-randomx",
        "chatty-pool",
        {"threads": 2, "pool_profile": "chatty"},
        None,
        "against a pool that asks for a share a second and a job every 10 s (the lab's old pace, kept on purpose)",
        (),
    ),
    (
        "miner-randomx",
        "fast",
        {"threads": (2, 1), "randomx_mode": "fast"},
        None,
        "fast mode (XMRig's default: the 2080 MiB dataset built first), ~10x light mode's hash rate and so ~10x its"
        " sched_yield() calls per CPU-second",
        (),
    ),
    ("miner-cryptonight", "2t", {"threads": 2}, None, "2 threads, sched_yield() after every hash", ()),
    (
        "miner-cryptonight",
        "renamed",
        {"threads": (1, 2), "disguise": "kworker-events"},
        None,
        "the binary copied to and run as 'kworker-events'",
        (),
    ),
    (
        "miner-cryptonight",
        "noise-70",
        {"threads": (2, 1), "noise": 0.7},
        None,
        "a noise thread makes 70% of the process's syscalls",
        (),
    ),
    ("miner-scrypt", "2t", {"threads": 2}, None, "2 threads, no yield (cpuminer)", ()),
    ("miner-sha256d", "2t", {"threads": 2}, None, "2 threads, no yield (cpuminer)", ()),
    (
        "miner-sha256d",
        "noise-90",
        {"threads": (2, 1), "noise": 0.9},
        None,
        "a noise thread makes 90% of the process's syscalls",
        (),
    ),
]


def c_miner_workloads() -> list[Workload]:
    out: list[Workload] = []
    for family, variant, changes, cpu_limit, description, subsets in _ENTRIES:
        algo, what = _FAMILIES[family]
        config = MinerConfig(algo=algo, **changes)  # type: ignore[arg-type]
        out.append(
            MinerWorkload(
                f"{family}-{variant}",
                family,
                config,
                variant=variant,
                description=f"{what}: {description}",
                cpu_limit=cpu_limit,
                subsets=subsets,
            )
        )
    return out


def miner_workloads() -> list[Workload]:
    """Every miner of the catalog: the C miners and the real XMRig."""
    from minerlens_lab.xmrig import xmrig_workloads

    return [*c_miner_workloads(), *xmrig_workloads()]

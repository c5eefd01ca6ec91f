"""Benign workloads: real programs under realistic load, one module per family."""

from __future__ import annotations

from minerlens_lab.workload import Workload


def benign_workloads() -> list[Workload]:
    from minerlens_lab.benign.batch_cpu import (
        StressCpuAll,
        StressCryptHash,
        StressMatrix,
        SysbenchCpu,
        SysbenchFileio,
        SysbenchMemory,
    )
    from minerlens_lab.benign.build import MakeLuajit
    from minerlens_lab.benign.compression import GzipCompress, XzCompress, ZstdCompress
    from minerlens_lab.benign.database import PgBench, PgBenchSelectOnly
    from minerlens_lab.benign.idle import IdleCron, IdleNginx, IdleRedis
    from minerlens_lab.benign.kv_cache import MemcachedMemaslap, RedisAof, RedisBenchmark
    from minerlens_lab.benign.media import FfmpegTranscode
    from minerlens_lab.benign.ml_training import NumpyMlp, TorchMlp
    from minerlens_lab.benign.web import NginxWrk, PythonHttpServer

    return [
        NginxWrk(),
        PythonHttpServer(),
        RedisBenchmark(),
        RedisAof(),
        MemcachedMemaslap(),
        PgBench(),
        PgBenchSelectOnly(),
        SysbenchCpu(),
        SysbenchMemory(),
        SysbenchFileio(),
        StressCpuAll(),
        StressCryptHash(),
        StressMatrix(),
        XzCompress(),
        GzipCompress(),
        ZstdCompress(),
        FfmpegTranscode(),
        NumpyMlp(),
        TorchMlp(),
        MakeLuajit(),
        IdleRedis(),
        IdleNginx(),
        IdleCron(),
    ]

"""Benign workloads: real programs under realistic load, one module per family - and the look-alikes
(hard negatives) that share a miner's traits: hashing jobs, yield-heavy runtimes, quiet pods on one
long-lived connection, CPU-bound workers fed over one connection."""

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
    from minerlens_lab.benign.build import GccAmalgLuajit, MakeLuajit
    from minerlens_lab.benign.compression import GzipCompress, XzCompress, XzExtreme, ZstdCompress
    from minerlens_lab.benign.database import PgBench, PgBenchSelectOnly
    from minerlens_lab.benign.hashing import (
        GoSha256,
        JvmSha256d,
        NodeSha256,
        OpensslSpeedAes,
        OpensslSpeedSha256,
        PythonHashlib,
    )
    from minerlens_lab.benign.idle import IdleCron, IdleNginx, IdleRedis
    from minerlens_lab.benign.keepalive import (
        HttpLongPollClient,
        KafkaConsumerIdle,
        RedisReplica,
        TcpKeepaliveClient,
        WebsocketClient,
    )
    from minerlens_lab.benign.kv_cache import MemcachedMemaslap, RedisAof, RedisBenchmark
    from minerlens_lab.benign.media import FfmpegTranscode
    from minerlens_lab.benign.ml_training import NumpyMlp, TorchMlp
    from minerlens_lab.benign.web import NginxWrk, PythonHttpServer
    from minerlens_lab.benign.workers import (
        DistTrainingWorker,
        FfmpegRenderWorker,
        GoQueueWorker,
        RedisLzmaWorker,
        RedisPbkdf2Worker,
    )
    from minerlens_lab.benign.yielding import BusyPollUdp, GoChannels, JvmYieldWorkers

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
        XzExtreme(),
        GzipCompress(),
        ZstdCompress(),
        FfmpegTranscode(),
        FfmpegRenderWorker(),
        NumpyMlp(),
        TorchMlp(),
        DistTrainingWorker(),
        MakeLuajit(),
        GccAmalgLuajit(),
        IdleRedis(),
        IdleNginx(),
        IdleCron(),
        JvmSha256d(),
        NodeSha256(),
        PythonHashlib(),
        GoSha256(),
        OpensslSpeedSha256(),
        OpensslSpeedAes(),
        TcpKeepaliveClient(),
        WebsocketClient(),
        HttpLongPollClient(),
        KafkaConsumerIdle(),
        RedisReplica(),
        RedisPbkdf2Worker(),
        RedisLzmaWorker(),
        GoQueueWorker(),
        JvmYieldWorkers(),
        GoChannels(),
        BusyPollUdp(),
    ]

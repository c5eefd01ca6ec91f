"""Explanation latency of the explainer API: cold (computed) per method, warm (Redis cache hit) under load.

    .venv/bin/python bench/explainer_latency.py [--model DIR] [--lstm-ae DIR | --no-lstm-ae] [--windows 30]
        [--warm-requests 2000] [--concurrency 20] [--rate 100] [--http-workers 1] [--redis-url URL]

Starts ``minerlens explainer run`` as a subprocess (uvicorn, real HTTP on 127.0.0.1) against
the real Redis (default ``MINERLENS_REDIS_URL`` or redis://127.0.0.1:16379/0, keys under a unique prefix
removed at the end) and measures with an httpx client in this process:

* cold: ``POST /v1/explain`` of ``--windows`` distinct real windows (1-s time windows of data/sample
  traces, miners and benign) one after another, every one a cache miss: client latency p50/p90/max and
  the explainer's own ``cost_ms``; the first request of each method (which loads the explainer) is
  reported apart;
* warm: ``--warm-requests`` requests for cached explanations through ``POST /v1/explain`` (window in the
  body) and ``GET /v1/pods/{ns}/{pod}/explanation?window=`` (window from the pod store), every response
  checked to come from the cache (``hit``, or ``coalesced``: it shared an in-flight read of the same
  key); one at a time (the service time of a hit), closed loop (``--concurrency`` always in flight: the
  saturation throughput, latency is then mostly queueing) and open loop (``--rate`` requests/s, at most
  ``--concurrency`` in flight: the latency a client sees under that load). Next to the client's latency,
  ``in app`` is the server's own time (``Server-Timing`` header: routing, auth, validation, Redis reads,
  encoding, and waiting for the event loop while other requests run; not HTTP parsing or the socket).

Without ``--model`` an XGBoost artifact (with its background, which LIME needs) is trained on data/sample
first; without ``--lstm-ae`` a small LSTM autoencoder (default architecture, 2 epochs: latency does not
depend on training) is trained when torch is installed (``--no-lstm-ae`` skips it). Targets (issue #6):
TreeSHAP cold p50 < 50 ms, LIME < 500 ms, LSTM-AE < 50 ms, warm p99 < 5 ms. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from minerlens_core.features import FeatureSpec, vectorize_many, window_sequence, windows_from_trace
from minerlens_core.models import VerifiedManifest
from minerlens_core.schemas.envelope import Envelope, PodRef
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_core.schemas.windows import window_id as make_window_id
from minerlens_core.traces import read_trace

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample"
TRACES = ("miner-randomx-no-yield-r1", "miner-randomx-2t-r1", "gzip-compress-r1", "idle-nginx-r1")


def build_xgboost(out: Path) -> Path:
    from minerlens_core.features import WindowPolicy
    from minerlens_training.artifacts import TrainingData, save_artifact
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors import make_detector

    spec = FeatureSpec.build(window=WindowPolicy.time(1.0))
    ds = load_dataset(SAMPLE, spec)
    det = make_detector("xgboost", seed=0).fit(ds.X, ds.y)
    det.infer_threshold(ds.X[ds.y == 0], 0.01)
    info = TrainingData(manifest_sha256=ds.manifest_sha256, source=ds.source, windows=len(ds), runs=len(ds.runs))
    save_artifact(det, out, spec, info, model_name="bench-xgboost", reference=(ds.X, ds.y))
    return out


def build_lstm_ae(out: Path, spec: FeatureSpec) -> Path | None:
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from minerlens_training.artifacts import TrainingData
    from minerlens_training.datasets import load_dataset
    from minerlens_training.detectors.sequence import LSTMAutoencoderDetector
    from minerlens_training.sequence.artifacts import save_sequence_artifact

    ds = load_dataset(SAMPLE, spec)
    det = LSTMAutoencoderDetector(seed=0, epochs=2).fit(ds.sequences, ds.y)
    det.infer_threshold(ds.sequences[ds.y == 0], 0.01)
    info = TrainingData(manifest_sha256=ds.manifest_sha256, source=ds.source, windows=len(ds), runs=len(ds.runs))
    save_sequence_artifact(det, out, spec, info, model_name="bench-lstm-ae", reference=(ds.X, ds.y))
    return out


def real_windows(spec: FeatureSpec, n: int) -> list[FeatureWindow]:
    """``n`` windows from data/sample traces, as the featurizer publishes them (pods bench/<trace>)."""
    p = spec.window
    tag = f"time:{p.seconds:g}s" if p.kind == "time" else f"count:{p.size}/{p.stride}"
    per = math.ceil(n / len(TRACES))
    out: list[FeatureWindow] = []
    for name in TRACES:
        ws = [w for w in windows_from_trace(read_trace(SAMPLE / "traces" / f"{name}.parquet"), p) if w.count][:per]
        pod = PodRef(uid=f"bench-{name}"[:64], namespace="bench", name=name)
        for w, row in zip(ws, vectorize_many(ws, spec), strict=True):
            out.append(
                FeatureWindow(
                    envelope=Envelope(node="bench", pod=pod),
                    window_id=make_window_id(pod.uid, "", tag, w.index),
                    policy=tag,
                    index=w.index,
                    start_ns=w.start_ns,
                    end_ns=w.end_ns,
                    count=w.count,
                    feature_version=spec.version,
                    feature_digest=spec.digest,
                    features=[None if math.isnan(v) else float(v) for v in row.tolist()],
                    sequence=[int(i) for i in window_sequence(w, spec.params)],
                )
            )
    return out[:n]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else math.nan


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed_store(env: dict[str, str], windows: list[FeatureWindow]) -> None:
    """Put the windows in the pod store the server reads (same Redis, same key prefix)."""
    from minerlens_explainer.runtime import Runtime
    from minerlens_explainer.settings import ExplainerSettings

    settings = ExplainerSettings(
        tokens_file=Path(env["MINERLENS_EXPLAINER_TOKENS_FILE"]), models=[],
        redis_url=env["MINERLENS_EXPLAINER_REDIS_URL"], key_prefix=env["MINERLENS_EXPLAINER_KEY_PREFIX"],
    )  # fmt: skip
    rt = Runtime.create(settings)
    try:
        ing = rt.ingestor()
        for w in windows:
            await ing.handle(settings.windows_topic, w.model_dump_json().encode())
    finally:
        await rt.close()


async def cold(client: httpx.AsyncClient, method: str, windows: list[FeatureWindow]) -> dict[str, Any]:
    latencies, costs = [], []
    first = None
    for i, w in enumerate(windows):
        body: dict[str, Any] = {"method": method, "window": w.model_dump(mode="json")}
        t0 = time.perf_counter()
        r = await client.post("/v1/explain", json=body)
        ms = (time.perf_counter() - t0) * 1000
        r.raise_for_status()
        assert r.headers["x-minerlens-cache"] == "miss", r.headers["x-minerlens-cache"]
        if i == 0:
            first = ms  # loads the explainer (SHAP / LIME / ONNX session)
            continue
        latencies.append(ms)
        costs.append(float(r.json()["explanation"]["cost_ms"]))
    return {"first": first, "latencies": latencies, "costs": costs}


def server_ms(r: httpx.Response) -> float:
    """The app's own time for the request (``Server-Timing: app;dur=<ms>``, set by the explainer)."""
    return float(r.headers["server-timing"].split("dur=")[1])


async def warm(
    client: httpx.AsyncClient, requests: list[tuple[str, str, Any]], total: int, concurrency: int,
    server: list[float] | None = None,
) -> tuple[list[float], float]:  # fmt: skip
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            verb, url, body = requests[i % len(requests)]
            t0 = time.perf_counter()
            r = await client.request(verb, url, json=body)
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200 or r.headers.get("x-minerlens-cache") not in ("hit", "coalesced"):
                raise RuntimeError(f"{url}: {r.status_code} {r.headers.get('x-minerlens-cache')} {r.text[:200]}")
            if server is not None:
                server.append(server_ms(r))

    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return latencies, total / (time.perf_counter() - t0)


async def open_loop(
    client: httpx.AsyncClient, requests: list[tuple[str, str, Any]], total: int, rate: float, concurrency: int,
    server: list[float],
) -> list[float]:  # fmt: skip
    """``total`` requests sent at ``rate``/s (at most ``concurrency`` in flight); latency counts from the
    scheduled send time, so time spent waiting for a free connection is included (no coordinated omission)."""
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    t0 = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        async with sem:
            verb, url, body = requests[i % len(requests)]
            r = await client.request(verb, url, json=body)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            if r.status_code != 200 or r.headers.get("x-minerlens-cache") not in ("hit", "coalesced"):
                raise RuntimeError(f"{url}: {r.status_code} {r.headers.get('x-minerlens-cache')}")
            server.append(server_ms(r))

    await asyncio.gather(*[one(i) for i in range(total)])
    return latencies


def line(name: str, values: list[float], target: str = "") -> str:
    return (
        f"{name:<40} n={len(values):<5} p50 {pct(values, 50):8.2f} ms  p90 {pct(values, 90):8.2f} ms  "
        f"p99 {pct(values, 99):8.2f} ms  max {max(values) if values else math.nan:8.2f} ms  {target}"
    )


async def run(args: argparse.Namespace, work: Path) -> None:
    model = args.model or build_xgboost(work / "xgboost")
    spec = VerifiedManifest(model).spec
    lstm: Path | None = args.lstm_ae
    if lstm is None and not args.no_lstm_ae:
        lstm = build_lstm_ae(work / "lstm-ae", spec)
    windows = real_windows(spec, args.windows + 1)
    token = secrets.token_urlsafe(32)
    (work / "tokens").write_text(f"read:{token}\n")
    port = free_port()
    prefix = f"bench:explainer:{uuid.uuid4().hex[:8]}:"
    env = {
        **os.environ,
        "MINERLENS_EXPLAINER_TOKENS_FILE": str(work / "tokens"),
        "MINERLENS_EXPLAINER_MODELS": ",".join(str(p) for p in (model, lstm) if p),
        "MINERLENS_EXPLAINER_REDIS_URL": args.redis_url,
        "MINERLENS_EXPLAINER_KEY_PREFIX": prefix,
        "MINERLENS_EXPLAINER_INGEST": "false",
        "MINERLENS_EXPLAINER_HOST": "127.0.0.1",
        "MINERLENS_EXPLAINER_PORT": str(port),
        "MINERLENS_EXPLAINER_HTTP_WORKERS": str(args.http_workers),
    }
    await seed_store(env, windows)
    cli = Path(sys.executable).with_name("minerlens")
    server = subprocess.Popen([str(cli), "explainer", "run"], env=env, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60,
            limits=httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency),
        ) as client:  # fmt: skip
            deadline = time.monotonic() + 60
            while True:
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the explainer did not start")
                await asyncio.sleep(0.2)
            print(f"model {model}" + (f", lstm-ae {lstm}" if lstm else ", no LSTM-AE artifact"))
            load = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"{len(windows)} real {spec.window.kind} windows; server pid {server.pid}; {os.cpu_count()} cpus; "
                  f"load average {load}")  # fmt: skip
            print("\ncold (cache miss, computed; first request per method loads the explainer and is left out)")
            targets = {"shap": "target p50 < 50 ms", "lime": "target p50 < 500 ms", "lstm-ae": "target p50 < 50 ms"}
            methods = ["shap", "lime"] + (["lstm-ae"] if lstm else [])
            for method in methods:
                res = await cold(client, method, windows)
                print(line(f"  {method} client latency", res["latencies"], targets[method]))
                print(line(f"  {method} explainer cost_ms", res["costs"]))
                print(f"  {method} first request (loads explainer) {res['first']:.0f} ms")
            reqs: list[tuple[str, str, Any]] = []
            for w in windows[:20]:
                reqs.append(("POST", "/v1/explain", {"method": "shap", "window": w.model_dump(mode="json")}))
            gets = [("GET", f"/v1/pods/bench/{w.envelope.pod.name}/explanation?method=shap&window={w.window_id}", None)
                    for w in windows[:20] if w.envelope.pod]  # fmt: skip
            for verb, url, body in gets:  # the GET route's first call computes nothing new (same key) but warms
                await client.request(verb, url, json=body)
            routes = (("POST /v1/explain (body)", reqs), ("GET /v1/pods/.../explanation", gets))
            print("\nwarm (Redis cache hit), one request at a time (service time)")
            floor: list[float] = []
            for _ in range(min(1000, args.warm_requests)):  # what any request costs here: the machine's floor
                t0 = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                floor.append((time.perf_counter() - t0) * 1000)
            print(line("  GET /healthz (floor) client", floor))
            for name, rs in routes:
                app1: list[float] = []
                lat, rps = await warm(client, rs, min(1000, args.warm_requests), 1, app1)
                print(line(f"  {name} client", lat, "target p99 < 5 ms") + f"  {rps:.0f} req/s")
                print(line(f"  {name} in app", app1))
            print(f"\nwarm (Redis cache hit), closed loop: {args.concurrency} requests always in flight (saturation)")
            for name, rs in routes:
                await warm(client, rs, min(200, args.warm_requests), args.concurrency)  # warm-up
                app: list[float] = []
                lat, rps = await warm(client, rs, args.warm_requests, args.concurrency, app)
                print(line(f"  {name} client", lat, "target p99 < 5 ms") + f"  {rps:.0f} req/s")
                print(line(f"  {name} in app", app))
            print(f"\nwarm (Redis cache hit), open loop: {args.rate:g} req/s, up to {args.concurrency} in flight")
            for name, rs in routes:
                app = []
                lat = await open_loop(client, rs, args.warm_requests, args.rate, args.concurrency, app)
                print(line(f"  {name} client", lat, "target p99 < 5 ms"))
                print(line(f"  {name} in app", app))
            metrics = (await client.get("/metrics")).text
            server_side = [
                ln for ln in metrics.splitlines() if ln.startswith("minerlens_explainer_cache_lookups_total")
            ]
            print(f"load average at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
            print("\nserver cache counters: " + ", ".join(s.split("{")[1].replace('"}', "").replace('result="', "")
                                                      for s in server_side))  # fmt: skip
    finally:
        server.terminate()
        server.wait(15)
        import redis

        r = redis.Redis.from_url(args.redis_url)
        keys = list(r.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            r.unlink(*keys)
        r.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, help="feature-model artifact (default: train XGBoost on data/sample)")
    ap.add_argument("--lstm-ae", type=Path, help="LSTM-autoencoder artifact (default: train a small one)")
    ap.add_argument("--no-lstm-ae", action="store_true", help="skip the LSTM-AE measurement")
    ap.add_argument("--windows", type=int, default=30, help="distinct windows explained cold per method")
    ap.add_argument("--warm-requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--rate", type=float, default=100.0, help="requests/s of the open-loop warm measurement")
    ap.add_argument("--http-workers", type=int, default=1, help="uvicorn worker processes of the server")
    ap.add_argument("--redis-url", default=os.environ.get("MINERLENS_REDIS_URL") or "redis://127.0.0.1:16379/0")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="minerlens-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()

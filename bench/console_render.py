"""Server-side render time of the operator console's pages with a full store: 500 pods, 50 open alerts.

    .venv/bin/python bench/console_render.py [--pods 500] [--alerts 50] [--verdicts 20] [--requests 100]
        [--model DIR] [--redis-url URL]

Fills the real Redis (``MINERLENS_REDIS_URL`` or redis://127.0.0.1:16379/0; keys under a unique prefix,
removed at the end) through the ingestion logic, as Kafka would: ``--pods`` pods with ``--verdicts``
verdicts each (real 1-s windows of data/sample, scores drawn per pod), ``--alerts`` of them with an open
alert, their windows and the alert's details. Then requests every page through the app in this process
(ASGI, no socket: what is measured is the server's work — routing, auth, Redis reads, templates), one at
a time, after one warm-up request per page (the alert pages' SHAP explanations are then in the cache, as
they are once anyone looked at an alert). Prints p50/p95/max per page and the app's own ``Server-Timing``.
Target (issue #15): p95 < 300 ms. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from explainer_latency import build_xgboost, pct, real_windows  # noqa: E402
from minerlens_core.features import FeatureSpec, WindowPolicy  # noqa: E402
from minerlens_core.schemas.windows import ModelRef  # noqa: E402
from minerlens_explainer.app import create_app  # noqa: E402
from minerlens_explainer.settings import ExplainerSettings  # noqa: E402

from tests.explainer.factory import pod_ref, verdict_for  # noqa: E402
from tests.explainer.operator_data import pod_windows, seed_alert  # noqa: E402

_TIMING = re.compile(r"app;dur=([\d.]+)")


async def seed(app_rt: object, args: argparse.Namespace, spec: FeatureSpec) -> list[str]:
    from minerlens_explainer.runtime import Runtime

    assert isinstance(app_rt, Runtime)
    rt = app_rt
    base = real_windows(spec, max(args.verdicts, 6))
    model = ModelRef(name="bench-xgboost", version="0.1.0")
    ing = rt.ingestor()
    rng = random.Random(0)
    alert_pods: list[str] = []
    t0 = time.perf_counter()
    for i in range(args.pods):
        pod = pod_ref(f"ns-{i % 25}", f"pod-{i:04d}", uid=f"bench-pod-{i}")
        windows = pod_windows(base[: args.verdicts], pod)
        if i < args.alerts:
            await seed_alert(rt, windows[:6], pod, f"alert-{i}", comm=f"worker-{i}", exe=f"/opt/app/worker-{i}")
            alert_pods.append(f"{pod.namespace}/{pod.name}")
            windows = windows[6:]
        for w in windows:
            v = verdict_for(w, rng.random() * (0.9 if i >= args.alerts else 1.0), model)
            await ing.handle(rt.settings.verdicts_topic, v.model_dump_json().encode())
    print(f"seeded {args.pods} pods ({args.alerts} alerting) in {time.perf_counter() - t0:.1f} s", flush=True)
    return alert_pods


async def measure(
    client: httpx.AsyncClient, path: str, n: int, auth: dict[str, str]
) -> tuple[list[float], list[float]]:
    r = await client.get(path, headers=auth)  # warm-up: loads templates, computes an uncached explanation once
    r.raise_for_status()
    wall, app = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(path, headers=auth)
        wall.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
        m = _TIMING.search(r.headers.get("server-timing", ""))
        if m:
            app.append(float(m.group(1)))
    return wall, app


async def main(args: argparse.Namespace) -> None:
    prefix = f"bench:console:{uuid.uuid4().hex[:8]}:"
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else build_xgboost(Path(tmp) / "xgb")
        token = secrets.token_urlsafe(32)
        tokens = Path(tmp) / "tokens"
        tokens.write_text(f"read:{token}\n")
        settings = ExplainerSettings(tokens_file=tokens, models=[model], redis_url=args.redis_url, key_prefix=prefix,
                                     ingest=False, redis_timeout_s=5.0)  # fmt: skip
        app = create_app(settings)
        try:
            async with app.router.lifespan_context(app):
                alert_pods = await seed(app.state.runtime, args, FeatureSpec.build(window=WindowPolicy.time(1.0)))
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://console", timeout=60) as c:
                    auth = {"Authorization": f"Bearer {token}"}
                    pages = {"pods (500 rows)": "/console/", "open alerts": "/console/alerts",
                             "alert page (shap, cached)": f"/console/pods/{alert_pods[0]}",
                             "alert page (another)": f"/console/pods/{alert_pods[-1]}",
                             "suppressions": "/console/suppressions", "feedback": "/console/feedback"}  # fmt: skip
                    print(f"{'page':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'app p95':>8}  (n={args.requests})")
                    for name, path in pages.items():
                        wall, inapp = await measure(c, path, args.requests, auth)
                        print(f"{name:28} {pct(wall, 50):8.1f} {pct(wall, 95):8.1f} {max(wall):8.1f} "
                              f"{pct(inapp, 95):8.1f}", flush=True)  # fmt: skip
        finally:
            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.unlink(*keys)
            client.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=500)
    p.add_argument("--alerts", type=int, default=50)
    p.add_argument("--verdicts", type=int, default=20, help="verdicts per pod (its sparkline)")
    p.add_argument("--requests", type=int, default=100, help="requests per page")
    p.add_argument("--model", help="a feature model artifact (default: train one on data/sample)")
    p.add_argument("--redis-url", default=os.environ.get("MINERLENS_REDIS_URL", "redis://127.0.0.1:16379/0"))
    asyncio.run(main(p.parse_args()))

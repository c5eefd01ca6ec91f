"""The real services (collector -> featurizer -> scorer) on topics of their own, for the live benches.

``LivePipeline`` starts ``minerlens collector|featurizer|scorer run`` with a fresh topic set and stops
them (SIGTERM, by PID) on exit; ``alert_findings`` consumes the run's alerts topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

MINERLENS = str(Path(sys.executable).parent / "minerlens")


@dataclass(frozen=True)
class LivePipeline:
    run: str
    topics: dict[str, str]


@contextmanager
def live_pipeline(model: Path, warmup_s: float = 10.0) -> Iterator[LivePipeline]:
    run = uuid.uuid4().hex[:6]
    t = {k: f"bench-{run}.{k}" for k in ("syscalls", "windows", "verdicts", "alerts")}
    env = {
        **os.environ,
        "MINERLENS_COLLECTOR_TOPIC": t["syscalls"],
        "MINERLENS_COLLECTOR_HTTP_PORT": "0",
        "MINERLENS_FEATURIZER_APP_ID": f"bench-featurizer-{run}",
        "MINERLENS_FEATURIZER_INPUT_TOPIC": t["syscalls"],
        "MINERLENS_FEATURIZER_OUTPUT_TOPIC": t["windows"],
        "MINERLENS_FEATURIZER_MODEL_DIR": str(model),
        "MINERLENS_FEATURIZER_WEB_PORT": "0",
        "MINERLENS_FEATURIZER_DATA_DIR": f"/tmp/bench-featurizer-{run}",
        "MINERLENS_SCORER_MODELS_DIR": str(model),
        "MINERLENS_SCORER_WINDOWS_TOPIC": t["windows"],
        "MINERLENS_SCORER_VERDICTS_TOPIC": t["verdicts"],
        "MINERLENS_SCORER_ALERTS_TOPIC": t["alerts"],
        "MINERLENS_SCORER_GROUP_ID": f"bench-scorer-{run}",
        "MINERLENS_SCORER_HTTP_PORT": "0",
    }
    procs = [
        subprocess.Popen([MINERLENS, svc, "run"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for svc in ("collector", "featurizer", "scorer")
    ]
    try:
        time.sleep(warmup_s)
        yield LivePipeline(run, t)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)

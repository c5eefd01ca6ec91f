"""Scorer latency and throughput per model: windows/s and p50/p99 latency, batch 1 and batched.

    .venv/bin/python bench/scorer_latency.py [--models DIR ...] [--batches 1,64,512] [--calls 2000]

Windows: every 1-second window of the committed sample (``data/sample-v1``, miners and benign pods) as the
``FeatureWindow`` messages the featurizer emits. Models:
  * every artifact under ``--models`` (default: ``models/``) whose feature spec matches 1-s windows;
  * ``tree`` and ``xgboost`` trained on the sample with the training API (unless ``--no-train``);
  * an LSTM sequence model: the artifact if one is given, else a **stand-in** exported from torch with random
    weights (embedding 32, one LSTM layer of 64, ``--lstm-length`` ids): same graph shape and cost as a
    trained one, its scores are meaningless.
Per model and batch size B, three paths:
  * ``onnx``: ``OnnxModel.score`` on a ready matrix (ONNX Runtime only);
  * ``scorer``: ``Scorer.score`` on ``FeatureWindow`` objects (matrix building, Verdict objects, reasons);
  * ``service``: + JSON decode of the window and JSON encode of the verdict (what the Kafka adapter adds).
Latency of one call is what every window of that batch waits; ``per window`` divides it by B. Each call
is timed twice: wall clock, and CPU time of this thread (``time.thread_time``: excludes the time the OS
gave to other processes, which dominates wall-clock p99 on a shared machine). windows/s is from CPU time.
One ONNX Runtime thread (the service default), one process. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from minerlens_core.features import VOCAB_SIZE
from minerlens_core.models import ONNX_FILE
from minerlens_core.models.onnx_model import pad_sequences
from minerlens_core.schemas.windows import FeatureWindow, decode_window
from minerlens_scorer.model_repository import artifact_dirs
from minerlens_scorer.model_set import LoadedModel, build_model_set, load_model
from minerlens_scorer.scoring import Scorer
from minerlens_training.toy import TIME_1S, onnx_artifact, sample_windows, train_sample_artifacts

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample-v1"  # the first lab's traces, as the scorer tests use them
SPEC = TIME_1S


def lstm_standin(out: Path, length: int) -> Path:
    """A randomly initialised embedding + LSTM + linear classifier exported to ONNX (a cost stand-in)."""
    import torch

    class Lstm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB_SIZE + 1, 32, padding_idx=VOCAB_SIZE)
            self.lstm = torch.nn.LSTM(32, 64, batch_first=True)
            self.head = torch.nn.Linear(64, 2)

        def forward(self, seq: torch.Tensor) -> torch.Tensor:
            h, _ = self.lstm(self.emb(seq))
            return torch.softmax(self.head(h[:, -1]), dim=1)

    torch.manual_seed(0)
    out.mkdir(parents=True)
    torch.onnx.export(
        Lstm().eval(),
        (torch.zeros(2, length, dtype=torch.int64),),
        str(out / ONNX_FILE),
        input_names=["sequence"],
        output_names=["probabilities"],
        dynamic_axes={"sequence": {0: "n"}, "probabilities": {0: "n"}},
        dynamo=False,
    )
    return onnx_artifact(
        out,
        None,  # model.onnx: written by the export above
        spec=SPEC,
        model_name="minerlens-lstm-standin",
        version="0.0.0",
        kind="lstm (random weights: latency stand-in)",
        detector="lstm",
        threshold=0.5,
        input_kind="sequence",
        sequence_length=length,
        onnx_input="sequence",
        libraries={"torch": torch.__version__},
    )


def timed(fn: Callable[[], object], calls: int) -> tuple[list[float], list[float]]:
    """Wall-clock and CPU (this thread) seconds per call; ONNX Runtime with one thread runs in this thread."""
    for _ in range(min(50, calls)):
        fn()
    wall, cpu = [], []
    for _ in range(calls):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    return wall, cpu


def pct(xs: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def bench(model: LoadedModel, windows: list[FeatureWindow], batches: list[int], calls: int) -> None:
    ms = build_model_set([model])
    scorer = Scorer(ms)
    raw = [w.model_dump_json().encode() for w in windows]
    m = model.model
    if m.input_kind == "sequence":
        matrix = pad_sequences([w.sequence for w in windows], m.manifest.sequence_length or 1)
    else:
        matrix = np.array([w.features for w in windows], dtype=np.float32)
    n = len(windows)
    for b in batches:
        starts = [(i * b) % max(1, n - b) for i in range(calls)]
        k = iter(range(10**12))

        def onnx_call(b: int = b, starts: list[int] = starts, k: Iterator[int] = k) -> None:
            s = starts[next(k) % calls]
            m.score(matrix[s : s + b])

        def scorer_call(b: int = b, starts: list[int] = starts, k: Iterator[int] = k) -> None:
            s = starts[next(k) % calls]
            scorer.score(windows[s : s + b])

        def service_call(b: int = b, starts: list[int] = starts, k: Iterator[int] = k) -> None:
            s = starts[next(k) % calls]
            batch = [decode_window(x) for x in raw[s : s + b]]
            for v in scorer.score(batch):
                v.model_dump_json()

        n_calls = max(20, calls // max(1, b // 8)) if b > 1 else calls
        for path, fn in (("onnx", onnx_call), ("scorer", scorer_call), ("service", service_call)):
            wall, cpu = timed(fn, n_calls)
            print(
                f"{model.name:<22} B={b:<4} {path:<8} {b * len(cpu) / sum(cpu):>9,.0f} win/s (cpu)  "
                f"call cpu p50 {1e3 * pct(cpu, 50):7.3f} p99 {1e3 * pct(cpu, 99):7.3f} ms | "
                f"wall p50 {1e3 * pct(wall, 50):7.3f} p99 {1e3 * pct(wall, 99):7.3f} ms | "
                f"per window cpu p50 {1e6 * pct(cpu, 50) / b:7.1f} p99 {1e6 * pct(cpu, 99) / b:7.1f} us"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=Path, nargs="*", default=[ROOT / "models"])
    ap.add_argument("--batches", default="1,64,512")
    ap.add_argument("--calls", type=int, default=2000, help="timed calls at batch 1 (fewer for big batches)")
    ap.add_argument("--lstm-length", type=int, default=128)
    ap.add_argument("--no-train", action="store_true", help="do not train tree/xgboost on the sample")
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]

    windows = [w for w in sample_windows(SAMPLE, spec=SPEC) if w.count >= 3]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} (other jobs inflate the p99)")
    median = statistics.median(w.count for w in windows)
    print(f"{len(windows)} one-second windows from {SAMPLE.name} (>= 3 syscalls), median {median:.0f} syscalls")
    tmp = Path(tempfile.mkdtemp(prefix="minerlens-bench-scorer-"))
    dirs = [d for root in args.models for d in artifact_dirs(root)]
    if not args.no_train:
        dirs += list(train_sample_artifacts(tmp / "sample", SAMPLE, spec=SPEC).values())
    models = []
    for d in dirs:
        try:
            lm = load_model(d)
        except Exception as exc:  # noqa: BLE001 - report and go on
            print(f"skip {d}: {exc}")
            continue
        if lm.digest != SPEC.digest:
            print(f"skip {d}: trained on another feature spec than 1-s windows")
            continue
        models.append((d, lm))
    if not any(lm.model.input_kind == "sequence" for _, lm in models):
        d = lstm_standin(tmp / "lstm", args.lstm_length)
        models.append((d, load_model(d)))
    for d, lm in models:
        print(f"model {lm.name} {lm.version} ({lm.model.manifest.kind}) from {d}")
    for _, lm in models:
        bench(lm, windows, batches, args.calls)


if __name__ == "__main__":
    main()

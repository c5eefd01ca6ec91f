"""Long fuzzing runs (``make fuzz``): every boundary with atheris, then (optionally) with hypothesis.

    python -m tests.fuzz.run [--runs 100000] [--boundary import:strace ...] [--examples 0] [--out DIR]

Boundaries run one at a time (one core each; the machine is shared). Per boundary, atheris starts from
the boundary's seeds (``tests/fuzz/seeds.py``) in a fresh corpus directory and executes ``--runs``
inputs; the line printed per boundary gives the inputs executed (libFuzzer's own count), crashes
(inputs written as ``crash-*`` under ``--out``) and time. ``--examples N`` then runs the hypothesis
properties with N examples per boundary (``MINERLENS_FUZZ_PROFILE=long``). Exit status 1 if anything
crashed: turn each saved input into a regression test (``tests/fuzz/test_regressions.py``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from tests.fuzz.targets import BOUNDARIES, seeds

ROOT = Path(__file__).resolve().parents[2]
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_OUTCOMES = re.compile(r"^outcomes: (.*)$", re.M)


def atheris_run(boundary: str, runs: int, out: Path, timeout_s: int = 10) -> tuple[int, int, float, str]:
    """(inputs executed, crashes, seconds, tail of the log) of one atheris run of ``boundary``.

    The tail starts with the last ``outcomes:`` line (how many inputs were accepted or refused, and how).
    """
    corpus = Path(tempfile.mkdtemp(prefix=f"corpus-{boundary.replace(':', '-')}-", dir=out))
    for i, data in enumerate(seeds(boundary)):
        (corpus / f"seed-{i}").write_bytes(data)
    largest = max(len(d) for d in seeds(boundary))
    prefix = out / f"{boundary.replace(':', '-')}-"
    cmd = [
        sys.executable, "-m", "tests.fuzz.atheris_main", boundary, f"-runs={runs}", f"-timeout={timeout_s}",
        "-rss_limit_mb=3072", f"-max_len={max(4096, 2 * largest)}", f"-artifact_prefix={prefix}",
        "-print_final_stats=1", str(corpus),
    ]  # fmt: skip
    started = time.monotonic()
    env = {**os.environ, "MINERLENS_FUZZ_SCRATCH": str(out / f"scratch-{boundary.replace(':', '-')}")}
    redis_prefix = f"fuzz:explainer:{uuid.uuid4().hex[:10]}:"
    env["MINERLENS_FUZZ_REDIS_PREFIX"] = redis_prefix  # the api boundary's keys (libFuzzer exits without cleanup)
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    finally:
        if boundary == "api":
            from tests.fuzz.api_target import purge

            purge(redis_prefix)
    seconds = time.monotonic() - started
    log = proc.stderr + proc.stdout
    (out / f"{boundary.replace(':', '-')}.log").write_text(log)
    done = _DONE.findall(log)
    executed = int(done[-1][0]) if done else 0
    crashes = len(list(out.glob(f"{prefix.name}crash-*"))) + len(list(out.glob(f"{prefix.name}timeout-*")))
    crashes += len(list(out.glob(f"{prefix.name}oom-*")))
    if proc.returncode != 0 and crashes == 0:
        crashes = 1  # died without an artifact (e.g. an exception at start-up): a failure all the same
    outcomes = _OUTCOMES.findall(log)
    summary = f"outcomes: {outcomes[-1]}\n" if outcomes else ""
    return executed, crashes, seconds, summary + "\n".join(log.strip().splitlines()[-25:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000, help="atheris inputs per boundary")
    parser.add_argument("--boundary", action="append", choices=BOUNDARIES, help="only these (repeatable)")
    parser.add_argument("--examples", type=int, default=0, help="hypothesis examples per boundary (0: skip)")
    parser.add_argument("--out", type=Path, default=None, help="where logs and crash inputs go")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="minerlens-fuzz-"))
    out.mkdir(parents=True, exist_ok=True)
    boundaries = args.boundary or list(BOUNDARIES)
    failed = 0
    print(f"fuzzing {len(boundaries)} boundaries, {args.runs} atheris inputs each; logs and crashes in {out}")
    for b in boundaries:
        executed, crashes, seconds, tail = atheris_run(b, args.runs, out)
        failed += crashes
        rate = executed / seconds if seconds else 0.0
        print(f"fuzz[atheris] {b}: {executed} inputs, {crashes} crashes, {seconds:.0f} s ({rate:.0f}/s)", flush=True)
        print("    " + (tail.splitlines()[0] if crashes == 0 and tail.startswith("outcomes:") else ""), flush=True)
        if crashes:
            print(tail)
    if args.examples:
        env = {**os.environ, "MINERLENS_FUZZ_PROFILE": "long", "MINERLENS_FUZZ_EXAMPLES": str(args.examples)}
        selected = " or ".join(f"[{b}]" for b in boundaries)
        cmd = [sys.executable, "-m", "pytest", "tests/fuzz/test_properties.py", "-q", "-s", "-p", "no:cacheprovider"]
        cmd += ["-k", f"hostile and ({selected})"] if args.boundary else ["-k", "hostile"]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
        failed += proc.returncode != 0
    print("fuzzing: " + ("FAILED, see above" if failed else "0 crashes"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""The fuzzed boundaries: one function per boundary that takes raw bytes and fails only on a real bug.

A boundary is where bytes an attacker controls enter minerlens. Each target feeds the bytes in the way
production does (a file on disk for importers and trace files, the bytes of a Kafka message for the
topic decoders) and accepts exactly the documented outcomes:

* importers (``import_files``): an ``ImportResult`` or ``TraceFormatError``; no malformed line may have
  the reason "parser error" (an exception no parser anticipated), and the table must be valid Arrow;
* trace files (``read_trace``): a ``Trace`` whose table is valid Arrow, or ``TraceFormatError``;
* topic decoders: the message or ``pydantic.ValidationError``; a decoded message must encode again and
  that encoding must decode (what a consumer forwards stays readable), and its envelope's time and key
  must be computable (what consumers derive from them);
* the featurizer's engine (``tests/fuzz/featurizer_target.py``): a sequence of syscall-topic messages of
  one or two pods, each processed (windows that decode, state that restores exactly) or dead-lettered
  with a documented reason;
* the explainer's API (``tests/fuzz/api_target.py``): one HTTP request to the app on the real Redis,
  answered with a status below 500 (a JSON error body for a 4xx).

Anything else propagates: hypothesis shrinks it, atheris saves it as a crash file. Both fuzzers share
these functions (``tests/fuzz/test_properties.py``, ``tests/fuzz/atheris_main.py``). ``OUTCOMES`` counts
how deep inputs got (accepted, refused as malformed JSON, refused by a field check, refused file), so a
run can tell whether its inputs reached past the parser.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from minerlens_core.errors import TraceFormatError
from pydantic import BaseModel, ValidationError

from tests.fuzz.outcomes import OUTCOMES, FuzzFailure

__all__ = ["BOUNDARIES", "OUTCOMES", "FuzzFailure", "Target", "seeds", "target"]
Target = Callable[[bytes], None]


@cache
def scratch() -> Path:
    """Where input files are written: ``MINERLENS_FUZZ_SCRATCH`` (the runner's output directory), else a
    temporary directory in memory (``/dev/shm``) removed when the process exits normally."""
    given = os.environ.get("MINERLENS_FUZZ_SCRATCH")
    if given:
        Path(given).mkdir(parents=True, exist_ok=True)
        return Path(given)
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="minerlens-fuzz-", dir=base))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def _as_file(data: bytes, suffix: str) -> Path:
    path = scratch() / f"input{suffix}"
    path.write_bytes(data)
    return path


def _importer(fmt: str, suffix: str = ".txt") -> Target:
    def run(data: bytes) -> None:
        from minerlens_core.traces.importers import import_files

        path = _as_file(data, suffix)
        try:
            result = import_files([path], fmt)
        except TraceFormatError:
            OUTCOMES["refused file"] += 1
            return
        OUTCOMES["imported, some lines malformed" if result.meta.malformed_lines else "imported"] += 1
        bad = [m for m in result.malformed if m.reason.startswith("parser error")]
        if bad:
            raise FuzzFailure(f"{fmt}: unanticipated error on line {bad[0].line_no}: {bad[0].reason}")
        result.table.validate(full=True)
        result.meta.model_dump_json()

    run.__name__ = f"import_{fmt}"
    return run


def read_trace_target(data: bytes) -> None:
    """``read_trace`` and the ``parquet`` import path on a file of these bytes."""
    from minerlens_core.traces import read_trace
    from minerlens_core.traces.importers import import_files

    path = _as_file(data, ".parquet")
    try:
        trace = read_trace(path)
    except TraceFormatError:
        OUTCOMES["refused file"] += 1
        return
    OUTCOMES["accepted"] += 1
    trace.table.validate(full=True)
    trace.table.slice(0, 64).to_pylist()
    trace.meta.model_dump_json()
    try:
        import_files([path], "parquet")
    except TraceFormatError:
        return


def _decoder(decode: Callable[[bytes], BaseModel]) -> Target:
    def run(data: bytes) -> None:
        try:
            message = decode(data)
        except ValidationError as exc:
            invalid_json = any(e["type"] == "json_invalid" for e in exc.errors())
            OUTCOMES["refused: not JSON" if invalid_json else "refused: field checks"] += 1
            return
        OUTCOMES["accepted"] += 1
        envelope = getattr(message, "envelope", None)
        if envelope is not None:
            envelope.observed_at.timestamp()  # what consumers compute (lag, first seen): must not overflow
            _ = envelope.key
        again = message.model_dump_json().encode()
        try:
            decode(again)
        except ValidationError as exc:
            raise FuzzFailure(f"a decoded message does not decode again after encoding: {exc}") from None

    run.__name__ = f"decode_{getattr(decode, '__name__', 'message')}"
    return run


def _explanation(data: bytes) -> Any:
    from minerlens_core.schemas.explanations import Explanation

    return Explanation.model_validate_json(data)


def _decoders() -> dict[str, Target]:
    from minerlens_core.schemas.events import decode_syscall_stream
    from minerlens_core.schemas.ocsf import decode_finding
    from minerlens_core.schemas.windows import decode_verdict, decode_window

    return {
        "syscalls": _decoder(decode_syscall_stream),
        "windows": _decoder(decode_window),
        "verdicts": _decoder(decode_verdict),
        "alerts": _decoder(decode_finding),
        "explanations": _decoder(_explanation),
    }


IMPORTER_BOUNDARIES = ("strace", "perf", "sysdig", "lid-ds", "tetragon", "names")
DECODER_BOUNDARIES = ("syscalls", "windows", "verdicts", "alerts", "explanations")
SERVICE_BOUNDARIES = ("featurizer", "api")
BOUNDARIES = (
    *(f"import:{f}" for f in IMPORTER_BOUNDARIES), "import:gzip", "read_trace", *DECODER_BOUNDARIES,
    *SERVICE_BOUNDARIES,
)  # fmt: skip
"""Every boundary by name: ``import:<format>``, ``import:gzip`` (compressed input), ``read_trace``, topics,
the featurizer's engine and the explainer's API."""


def target(boundary: str) -> Target:
    if boundary.startswith("import:"):
        fmt = boundary.removeprefix("import:")
        return _importer("strace", ".txt.gz") if fmt == "gzip" else _importer(fmt)
    if boundary == "read_trace":
        return read_trace_target
    if boundary == "featurizer":
        from tests.fuzz.featurizer_target import featurizer_target

        return featurizer_target
    if boundary == "api":
        from tests.fuzz.api_target import api, api_target

        api()  # started now: the app, the stored pods and the explainers' first load are not an input's time
        return api_target
    decoders = _decoders()
    if boundary in decoders:
        return decoders[boundary]
    msg = f"unknown boundary {boundary!r}; known: {', '.join(BOUNDARIES)}"
    raise KeyError(msg)


def seeds(boundary: str) -> list[bytes]:
    """Valid inputs of a boundary (see ``tests/fuzz/seeds.py``)."""
    import gzip
    import json

    from tests.fuzz import seeds as s

    if boundary == "import:gzip":
        return [gzip.compress(b, mtime=0) for b in s.importer_seeds("strace")]
    if boundary.startswith("import:"):
        return s.importer_seeds(boundary.removeprefix("import:"))
    if boundary == "read_trace":
        return s.trace_seeds()
    if boundary == "featurizer":
        from tests.fuzz.featurizer_target import seeds as featurizer_seeds

        return featurizer_seeds()
    if boundary == "api":
        return s.api_seeds()
    return [json.dumps(m).encode() for m in s.message_seeds(boundary)]

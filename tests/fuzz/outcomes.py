"""What a fuzz target reports besides returning: ``FuzzFailure`` (a bug), ``OUTCOMES`` (how deep inputs
got) and ``logged_errors`` (errors a service logged and survived: each one a bug it caught)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

OUTCOMES: Counter[str] = Counter()
"""outcome -> inputs, for every target run in this process (one outcome per input)"""


class FuzzFailure(AssertionError):
    """An outcome a boundary does not document (not an exception a harness should ever catch)."""


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.seen.append(f"{record.getMessage()}: {type(exc).__name__}: {exc}" if exc else record.getMessage())


@contextmanager
def logged_errors(logger_name: str) -> Iterator[list[str]]:
    """The errors logged under ``logger_name`` while the block runs; its log is not printed meanwhile
    (warnings about hostile input are expected and would flood a fuzzing run's output)."""
    logger = logging.getLogger(logger_name)
    handler, propagate = _Errors(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate

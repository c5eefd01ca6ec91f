"""Trace files: the one canonical on-disk format (Parquet) and importers of other formats."""

from minerlens_core.traces.model import (
    TRACE_FORMAT_VERSION,
    TRACE_SCHEMA,
    StreamSample,
    Trace,
    TraceBuilder,
    TraceMeta,
    conform,
    read_trace,
    write_trace,
)

__all__ = [
    "TRACE_FORMAT_VERSION",
    "TRACE_SCHEMA",
    "StreamSample",
    "Trace",
    "TraceBuilder",
    "TraceMeta",
    "conform",
    "read_trace",
    "write_trace",
]

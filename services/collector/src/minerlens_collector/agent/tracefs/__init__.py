"""Live kernel source: ``raw_syscalls:sys_enter`` from a tracefs instance of our own.

Binary per-CPU ``trace_pipe_raw`` pages decoded with numpy; loss from ``per_cpu/cpuN/stats`` and the
page headers' missed-events flags, never silent.
"""

from minerlens_collector.agent.tracefs.format import (
    DEFAULT_FORMAT,
    PageHeader,
    SysEnterFormat,
    load_format,
    parse_header_page,
    parse_sys_enter_format,
)
from minerlens_collector.agent.tracefs.instance import TracefsInstance, find_tracefs, is_available
from minerlens_collector.agent.tracefs.reader import CpuStats, TracefsReader, parse_stats
from minerlens_collector.agent.tracefs.ringbuffer import DecodedPages, decode_pages, decode_pages_reference
from minerlens_collector.agent.tracefs.source import TracefsSource
from minerlens_collector.events import RawEvents

__all__ = [
    "DEFAULT_FORMAT",
    "CpuStats",
    "DecodedPages",
    "PageHeader",
    "RawEvents",
    "SysEnterFormat",
    "TracefsInstance",
    "TracefsReader",
    "TracefsSource",
    "decode_pages",
    "decode_pages_reference",
    "find_tracefs",
    "is_available",
    "load_format",
    "parse_header_page",
    "parse_stats",
    "parse_sys_enter_format",
]

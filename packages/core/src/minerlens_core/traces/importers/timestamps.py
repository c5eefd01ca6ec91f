"""Time stamps of text traces: decimal seconds (``decimal_ns``) and time-of-day stamps (``TimeOfDay``: midnight
rollovers, then the calendar date and zone of ``ImportOptions``) to Unix-epoch nanoseconds, exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from minerlens_core.errors import TraceFormatError
from minerlens_core.schemas.bounds import INT64_MAX
from minerlens_core.traces.importers.base import MAX_ROLLOVERS, NS, ImportOptions, LineError

DAY_NS = 86_400 * NS


def decimal_ns(text: str) -> int:
    """``"1795762664.928514"`` (seconds with up to 9 decimals) -> ns, exactly (no float rounding).

    :class:`LineError` if it is not ``digits[.digits]`` or beyond the int64 ns range (year 2262).
    """
    sec, _, frac = text.partition(".")
    frac = frac[:9]
    if not (sec.isascii() and sec.isdigit()) or (frac and not (frac.isascii() and frac.isdigit())):
        msg = f"bad time {text[:32]!r}"
        raise LineError(msg)
    if len(sec) > 11:
        msg = f"time {text[:32]!r} out of range"
        raise LineError(msg)
    value = int(sec) * NS + int(frac.ljust(9, "0") or "0")
    if value > INT64_MAX:
        msg = f"time {text[:32]!r} out of range (after 2262)"
        raise LineError(msg)
    return value


_TOD = re.compile(r"^(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?$")


class TimeOfDay:
    """Time-of-day stamps (``HH:MM:SS[.frac]``) -> ns from midnight of the first stamp's day.

    A stamp more than 12 h before the previous one is a midnight rollover. ``apply`` adds the
    epoch of that midnight once the whole stream is read (see :class:`ImportOptions`).
    """

    def __init__(self) -> None:
        self.days = 0
        self.used = False
        self.dropped = ""
        self._last: int | None = None

    def ns(self, text: str) -> int:
        m = _TOD.match(text)
        if m is None:
            msg = f"bad time of day {text!r}"
            raise LineError(msg)
        h, mi, s = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if h > 23 or mi > 59 or s > 60:
            msg = f"bad time of day {text!r}"
            raise LineError(msg)
        value = ((h * 60 + mi) * 60 + s) * NS + int((m.group(4) or "").ljust(9, "0"))
        if self._last is not None and value + self.days * DAY_NS < self._last - DAY_NS // 2:
            if self.days >= MAX_ROLLOVERS:
                msg = f"more than {MAX_ROLLOVERS} midnight rollovers of time-of-day stamps"
                raise LineError(msg)
            self.days += 1
        out = value + self.days * DAY_NS
        self._last = out
        self.used = True
        return out

    def first_date(self, options: ImportOptions) -> dt.date | None:
        if options.date is not None:
            return options.date
        if options.end_date is not None:
            return options.end_date - dt.timedelta(days=self.days)
        return None

    def apply(self, table: pa.Table, options: ImportOptions) -> pa.Table:
        if not self.used or table.num_rows == 0:
            return table
        day = self.first_date(options)
        idx = table.schema.get_field_index("ts_ns")
        if day is None:
            return table.set_column(idx, "ts_ns", pa.nulls(table.num_rows, pa.int64()))
        try:
            base = midnight_ns(day, options.tz)
        except TraceFormatError:
            if options.date is not None:
                raise
            base = -1
        col = table.column(idx)
        top = pc.max(col).as_py()
        if top is None:  # no row has a time of day (e.g. only relative stamps)
            return table
        if base < 0 or base + int(top) > INT64_MAX:
            if options.date is not None:
                msg = f"time-of-day stamps dated {day.isoformat()} fall outside 1970 .. 2262: give another date"
                raise TraceFormatError(msg)
            self.dropped = f"file modification date {day.isoformat()} is outside 1970 .. 2262: ts_ns dropped"
            return table.set_column(idx, "ts_ns", pa.nulls(table.num_rows, pa.int64()))
        return table.set_column(idx, "ts_ns", pc.add(col, pa.scalar(base, pa.int64())))

    def notes(self, options: ImportOptions) -> dict[str, Any]:
        """Which calendar date and zone the time-of-day stamps were given (for ``TraceMeta.extra``)."""
        if not self.used:
            return {}
        day = self.first_date(options)
        if day is None:
            return {"time_of_day": "no date given: ts_ns dropped (pass date=)"}
        if self.dropped:
            return {"time_of_day": self.dropped}
        origin = "given" if options.date is not None else "file modification time"
        zone = str(options.tz) if options.tz is not None else "local zone of the importing machine"
        return {"time_of_day": f"{day.isoformat()} ({origin}), {zone}", "midnight_rollovers": self.days}


def midnight_ns(day: dt.date, tz: dt.tzinfo | None) -> int:
    """Unix-epoch ns of 00:00 of ``day`` in ``tz`` (None: this machine's local zone)."""
    naive = dt.datetime(day.year, day.month, day.day)  # noqa: DTZ001 - zone applied just below
    try:
        aware = naive.replace(tzinfo=tz) if tz is not None else naive.astimezone()
        return int(aware.timestamp()) * NS
    except (OverflowError, OSError, ValueError) as exc:
        msg = f"cannot place time-of-day stamps on {day.isoformat()}: {exc}"
        raise TraceFormatError(msg) from None

"""The one way the CLIs make a rich ``Console``: wrapped for a person at a terminal, never for a pipe.

rich hard-wraps at 80 columns when its stream is not a terminal, which splits messages (and the paths and
numbers in them) across lines in files, pipes and CI logs. Here a console on a terminal keeps rich's
behaviour; on anything else text is not wrapped (``soft_wrap``) and tables get ``PIPE_WIDTH`` columns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonOpt = Annotated[bool, typer.Option("--json", help="print a JSON array instead of the table (for scripts)")]
PIPE_WIDTH = 200
"""columns a table may use when the output is not a terminal"""


def make_console(*, stderr: bool = False, width: int | None = None, **kwargs: Any) -> Console:
    """A Console on stdout (or stderr); ``width`` applies only when the stream is not a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(stderr=stderr, soft_wrap=not tty, width=None if tty else (width or PIPE_WIDTH), **kwargs)


def print_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, as_json: bool = False, width: int | None = None
) -> None:
    """A table for people, or with ``as_json`` one JSON array of objects (keys: ``columns``) on stdout for scripts
    (every CLI command that prints a table takes ``--json``). Values are plain: no rich markup."""
    data = [list(r) for r in rows]
    if as_json:
        keys = [c.replace(" ", "_").replace("/", "_per_") for c in columns]
        sys.stdout.write(json.dumps([dict(zip(keys, r, strict=True)) for r in data], default=str) + "\n")
        return
    table = Table(*columns)
    for r in data:
        table.add_row(*("" if v is None else str(v) for v in r))
    make_console(width=width, highlight=False).print(table)

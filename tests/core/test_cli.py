"""The ``minerlens`` command line: import/show round trip, clear errors, plugin commands present."""

from __future__ import annotations

import json
from pathlib import Path

from minerlens_core.cli import _load_plugins, app
from minerlens_core.traces import read_trace
from typer.testing import CliRunner

DATA = Path(__file__).resolve().parents[1] / "data" / "importers"
runner = CliRunner()
_load_plugins()


def test_import_then_show(tmp_path: Path) -> None:
    out = tmp_path / "t.parquet"
    res = runner.invoke(
        app,
        [
            "import",
            "--format",
            "strace",
            str(DATA / "strace" / "ls_f_tt_C.txt"),
            "--out",
            str(out),
            "--label",
            "benign",
        ],
    )
    assert res.exit_code == 0, res.output
    trace = read_trace(out)
    assert trace.meta.label == "benign"
    assert trace.meta.source == "strace"
    assert len(trace) > 10
    shown = runner.invoke(app, ["show", str(out)])
    assert shown.exit_code == 0, shown.output
    counts = trace.table.column("syscall").value_counts().to_pylist()
    most = max(counts, key=lambda c: c["counts"])
    assert f"{most['values']}={most['counts']}" in shown.output
    as_json = runner.invoke(app, ["show", str(out), "--json"])
    assert as_json.exit_code == 0, as_json.output
    (pod,) = json.loads(as_json.output)
    assert set(pod) == {"pod", "container", "syscalls", "threads", "top_syscalls"}
    assert pod["syscalls"] == len(trace)
    assert f"{most['values']}={most['counts']}" in pod["top_syscalls"]


def test_import_reports_malformed_lines(tmp_path: Path) -> None:
    """The summary names the counts on one line, however long the paths (output that is not a terminal is never
    hard-wrapped: rich would split it at 80 columns)."""
    deep = tmp_path / ("a-rather-long-directory-name-" * 4) / ("and-another-one-" * 4)
    deep.mkdir(parents=True)
    bad = deep / "names.txt"
    bad.write_text("read write\n%%% garbage !!!\nclose\n")
    res = runner.invoke(app, ["import", "-f", "names", str(bad), "-o", str(deep / "x.parquet")])
    assert res.exit_code == 0, res.output
    assert "line 2" in res.output
    assert "3 syscalls, 1 malformed" in res.output
    assert max(len(line) for line in res.output.splitlines()) > 80, "long lines stay whole"


def test_unknown_format_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    res = runner.invoke(
        app, ["import", "-f", "pcap", str(DATA / "names" / "xmrig_head.txt"), "-o", str(tmp_path / "x")]
    )
    assert res.exit_code != 0
    assert "pcap" in str(res.exception) or "pcap" in res.output
    res = runner.invoke(app, ["show", str(tmp_path / "missing.parquet")])
    assert res.exit_code != 0
    assert "no such trace file" in str(res.exception)


def test_collector_commands_are_registered() -> None:
    res = runner.invoke(app, ["--help"])
    for cmd in ("capture", "pod", "collector", "import", "show"):
        assert cmd in res.output
    bad = runner.invoke(app, ["capture", "--pod", "no-slash", "--out", "x.parquet", "--", "true"])
    assert bad.exit_code == 2
    assert "NAMESPACE/NAME" in bad.output

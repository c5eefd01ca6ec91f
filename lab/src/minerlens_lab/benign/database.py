"""PostgreSQL under pgbench. The server runs in the pod as the ``postgres`` user (it refuses root).

The pgbench database (initdb + ``pgbench -i``) is made once into the cache as a template and copied
into each run's work directory, so every run starts from the same data.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from minerlens_lab.benign.common import port, setting
from minerlens_lab.drive import Clock, run_tool
from minerlens_lab.workload import RunContext, Workload

PG_USER = "postgres"
CLIENTS = (8, 2, 24)
"""pgbench clients, by repeat"""
SCALE = 5  # pgbench scale factor: 500k accounts, ~75 MB


def pg_bindir() -> Path:
    """The newest PostgreSQL server installation (Debian: /usr/lib/postgresql/<major>/bin)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else Path("/usr/lib/postgresql/bin")


def _as_postgres(argv: list[str]) -> list[str]:
    return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_USER}", "--init-groups", "--", *argv]


def _chown_tree(path: Path) -> None:
    pw = pwd.getpwnam(PG_USER)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def _server_argv(data: Path, sock: Path, p: int) -> list[str]:
    return _as_postgres(
        [
            str(pg_bindir() / "postgres"),
            "-D",
            str(data),
            "-k",
            str(sock),
            "-p",
            str(p),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "max_connections=50",
            "-c",
            "shared_buffers=128MB",
        ]
    )


def _pgbench(p: int, *args: str) -> list[str]:
    """``pgbench`` connected to the server on 127.0.0.1:``p`` as ``PG_USER``, with ``args``."""
    return [str(pg_bindir() / "pgbench"), "-h", "127.0.0.1", "-p", str(p), "-U", PG_USER, *args]


def _wait_ready(p: int, stop: threading.Event | None = None, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
        ready = subprocess.run(
            [str(pg_bindir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(p)], check=False
        ).returncode
        if ready == 0:
            return True
        time.sleep(0.1)
    return False


def _make_template(dest: Path) -> None:
    """initdb + pgbench -i, in a world-traversable temp dir (the cache may sit under /root)."""
    tmp = Path(tempfile.mkdtemp(prefix="minerlens-pgtemplate-"))
    tmp.chmod(0o755)
    data, sock = tmp / "data", tmp / "sock"
    sock.mkdir()
    _chown_tree(tmp)
    try:
        subprocess.run(
            [
                *_as_postgres([str(pg_bindir() / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust"]),
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        p = RunContext.free_port()
        server = subprocess.Popen(_server_argv(data, sock, p), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not _wait_ready(p):
                msg = "template postgres did not become ready"
                raise RuntimeError(msg)
            subprocess.run(_pgbench(p, "-i", "-q", "-s", str(SCALE), "postgres"), check=True, capture_output=True)
        finally:
            server.terminate()  # SIGTERM = smart shutdown: a clean checkpoint
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(data, partial, symlinks=True)
        partial.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class PgBench(Workload):
    name = "postgres-pgbench"
    family = "database"
    label = "benign"
    variant = "tpcb-like"
    description = "PostgreSQL (scale 5) under pgbench's TPC-B-like read/write transactions, 8 (2, 24) clients"
    requires = (str(pg_bindir() / "postgres"), str(pg_bindir() / "pgbench"), "setpriv")
    pgbench_args: tuple[str, ...] = ()

    def prepare(self, ctx: RunContext) -> None:
        major = pg_bindir().parent.name
        template = ctx.cache_dir / f"pgbench-pg{major}-s{SCALE}"
        if not (template / "PG_VERSION").exists():
            _make_template(template)
        data = ctx.workdir / "pgdata"
        shutil.copytree(template, data, symlinks=True)
        (ctx.workdir / "pgsock").mkdir()
        _chown_tree(ctx.workdir)
        data.chmod(0o700)

    def command(self, ctx: RunContext) -> list[str]:
        setting(ctx, "clients", CLIENTS)
        return _server_argv(ctx.workdir / "pgdata", ctx.workdir / "pgsock", port(ctx))

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        p = port(ctx)
        clients = setting(ctx, "clients", CLIENTS)
        if not _wait_ready(p, stop, timeout_s=clock.left()):
            return
        run = run_tool(
            _pgbench(
                p,
                "-c",
                str(clients),
                "-j",
                str(min(clients, ctx.threads)),
                "-T",
                str(clock.whole_seconds_left()),
                *self.pgbench_args,
                "postgres",
            ),
            stop,
        )
        tx = re.search(r"number of transactions actually processed: (\d+)", run.stdout)
        tps = re.search(r"tps = ([\d.]+)", run.stdout)
        if tx:
            ctx.facts["transactions"] = int(tx[1])
        if tps:
            ctx.facts["tps"] = float(tps[1])
        if run.returncode not in (0, None):
            ctx.facts["pgbench_error"] = run.stderr.strip()[-300:]

    def check(self, ctx: RunContext) -> None:
        if not ctx.facts.get("transactions"):
            msg = f"pgbench completed no transaction: {ctx.facts.get('pgbench_error', 'no output')}"
            raise RuntimeError(msg)

    def cleanup(self, ctx: RunContext) -> None:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(ctx.workdir / "pgdata")


class PgBenchSelectOnly(PgBench):
    name = "postgres-pgbench-select"
    variant = "select-only"
    description = "PostgreSQL (scale 5) under pgbench's built-in select-only script (point reads), 8 (2, 24) clients"
    pgbench_args = ("-S",)

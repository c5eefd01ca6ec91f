"""Web servers under HTTP load: nginx with wrk, Python's http.server with a Python client."""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path

from minerlens_lab.benign.common import port, repeat_threads, setting
from minerlens_lab.benign.site import count_lines, nginx_argv, nginx_config, request_paths, write_site
from minerlens_lab.drive import Clock, run_tool, wait_tcp
from minerlens_lab.workload import CI_SUBSET, RunContext, Workload

CONNECTIONS = (32, 8, 128)
"""wrk's connections to nginx, by repeat"""
CONCURRENCY = (8, 2, 32)
"""client threads against http.server, by repeat"""

# wrk picks each request's path at random from the site's weighted request mix
_WRK_SCRIPT = """\
local paths = {%s}
math.randomseed(7)
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Accept-Encoding"] = "gzip"})
end
"""


def _wrk_script(workdir: Path) -> Path:
    path = workdir / "mix.lua"
    path.write_text(_WRK_SCRIPT % ", ".join(f'"{p}"' for p in request_paths()))
    return path


class NginxWrk(Workload):
    name = "nginx-wrk"
    family = "web"
    label = "benign"
    variant = "static-site"
    description = "nginx (a worker per thread, sendfile, gzip, access log) serving a static site to wrk, 32/8/128 conns"
    requires = ("nginx", "wrk")

    def prepare(self, ctx: RunContext) -> None:
        nginx_config(ctx.workdir, port(ctx), repeat_threads(ctx))
        _wrk_script(ctx.workdir)

    def command(self, ctx: RunContext) -> list[str]:
        setting(ctx, "connections", CONNECTIONS)
        return nginx_argv(ctx.workdir, ctx.workdir / "nginx.conf")

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        p = port(ctx)
        connections = setting(ctx, "connections", CONNECTIONS)
        if not wait_tcp("127.0.0.1", p, stop):
            return
        run = run_tool(
            [
                "wrk",
                "-t",
                str(ctx.threads),
                "-c",
                str(connections),
                "-d",
                f"{clock.whole_seconds_left()}s",
                "-s",
                str(ctx.workdir / "mix.lua"),
                f"http://127.0.0.1:{p}/",
            ],
            stop,
        )
        rps = re.search(r"Requests/sec:\s*([\d.]+)", run.stdout)
        if rps:
            ctx.facts["client_rps"] = float(rps[1])

    def check(self, ctx: RunContext) -> None:
        served = count_lines(ctx.workdir / "access.log")
        ctx.facts["requests_served"] = served
        if served == 0:
            msg = "nginx served no request"
            raise RuntimeError(msg)


class PythonHttpServer(Workload):
    name = "python-http-server"
    family = "web"
    label = "benign"
    variant = "threading-http1.0"
    subsets = (CI_SUBSET,)
    description = "python3 -m http.server (ThreadingHTTPServer) serving a static site to 8/2/32 Python client threads"

    def prepare(self, ctx: RunContext) -> None:
        write_site(ctx.workdir / "www")

    def command(self, ctx: RunContext) -> list[str]:
        www = str(ctx.workdir / "www")
        setting(ctx, "concurrency", CONCURRENCY)
        return [sys.executable, "-m", "http.server", str(port(ctx)), "--bind", "127.0.0.1", "--directory", www]

    def drive(self, ctx: RunContext, stop: threading.Event) -> None:
        clock = Clock(ctx.seconds)
        p = port(ctx)
        concurrency = setting(ctx, "concurrency", CONCURRENCY)
        if not wait_tcp("127.0.0.1", p, stop):
            return
        run = run_tool(
            [
                sys.executable,
                "-m",
                "minerlens_lab.benign.httpload",
                "--port",
                str(p),
                "--concurrency",
                str(concurrency),
                "--seconds",
                f"{max(0.3, clock.left() - 1.0):.2f}",
            ],
            stop,
        )
        if run.stdout.strip():  # printed before exiting: good even if the exit was cut short by stop
            totals = json.loads(run.stdout.strip().splitlines()[-1])
            ctx.facts.update({f"client_{k}": v for k, v in totals.items()})

    def check(self, ctx: RunContext) -> None:
        if not ctx.facts.get("client_requests"):
            msg = "http.server answered no request"
            raise RuntimeError(msg)

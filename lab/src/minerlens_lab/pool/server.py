"""The pool server: XMRig's stratum dialect (newline-delimited JSON-RPC over TCP), loopback only.

Session life as XMRig expects it: ``login`` (login, pass, agent, the algorithms the miner has) is
answered with a session id, the first job and the extensions (``algo``, ``keepalive``); later the
pool pushes ``job`` notifications: to everyone on a template refresh (every ``job_interval_s``) or a
new block, to one connection when its difficulty is retargeted (see ``vardiff``). ``submit`` carries
a nonce and the hash; the cheap checks (session, job, nonce, duplicate) answer at once, the proof of
work is recomputed off the connection's loop (``minerlens_lab.miners.pow``) and checked against the
job's target. Jobs of an older block are rejected as ``Block expired``. ``keepalived`` is answered
with ``KEEPALIVED``; a connection silent for ``idle_timeout_s`` is closed. ``getjob`` returns the
connection's current job. ``stats`` (no login needed) returns a login's counters.

The password may carry ``start=N``: the connection's first difficulty (the lab starts a run near the
difficulty a long-running miner would have converged to; vardiff takes it from there).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import random
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from minerlens_lab.miners.pow import ALGORITHMS, Verifier, meets_target, target_from_compact, with_nonce
from minerlens_lab.pool.config import REALISTIC, PoolConfig
from minerlens_lab.pool.jobs import Chain, Job
from minerlens_lab.pool.session import LoginStats as LoginStats
from minerlens_lab.pool.session import Session
from minerlens_lab.pool.session import start_difficulty as start_difficulty
from minerlens_lab.pool.vardiff import Vardiff

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_JOBS_KEPT = 16
"""jobs of a connection whose shares are still accepted (same block)"""
_LINE_LIMIT = 64 * 1024
_TICK_S = 1.0
_SEND_TIMEOUT_S = 10.0


class PoolServer:
    """The pool. ``await start()`` binds and serves; ``await stop()`` closes every connection."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        host: str = HOST,
        port: int = 0,
        config: PoolConfig = REALISTIC,
        start_diff: dict[str, int] | None = None,
        seed: bytes | None = None,
        rng_seed: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.start_diff = {
            name: max(1, round(a.start_diff * config.share_interval_s)) for name, a in ALGORITHMS.items()
        } | (start_diff or {})
        """per algorithm: one share per interval from one thread of this lab's machine (``Algorithm.start_diff``
        is the difficulty of one share a second)"""
        self.chain = Chain(seed or secrets.token_bytes(32))
        self.verifier = Verifier(cache_dir)
        self._rng = random.Random(rng_seed)  # noqa: S311 - timing simulation, not security
        self._stats: dict[str, LoginStats] = {}
        self._stats_lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, Session] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool-verify")
        self._block_now = asyncio.Event()

    @property
    def seed(self) -> bytes:
        return self.chain.seed

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=_LINE_LIMIT)
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._spawn(self._chain_loop())
        self._spawn(self._tick_loop())
        log.info("stratum pool (%s) listening on %s:%d", self.config.name, self.host, self.port)
        return self.host, self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for s in list(self._sessions.values()):
            s.writer.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def warm_up(self, algos: tuple[str, ...] = ("rx/0", "cn-like")) -> None:
        """Build what verification needs ahead of the first share (RandomX cache, the cn-like library)."""
        loop = asyncio.get_running_loop()
        for name in algos:
            if name == "rx/0":
                await loop.run_in_executor(self._executor, self.verifier.randomx.prepare, self.seed)
            elif name == "cn-like":
                await loop.run_in_executor(self._executor, self.verifier.cnlike, bytes(76))

    def new_block(self) -> None:
        """Simulate a new block now (from the loop's thread): every connection gets a new job."""
        self._block_now.set()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # ---- stats -----------------------------------------------------------------------------------

    def stats(self, login: str) -> dict[str, Any]:
        with self._stats_lock:
            return (self._stats.get(login) or LoginStats()).as_dict()

    def all_stats(self) -> dict[str, dict[str, Any]]:
        with self._stats_lock:
            return {k: v.as_dict() for k, v in self._stats.items()}

    def _with_stats(self, login: str) -> LoginStats:
        """The login's counters (call with ``_stats_lock`` held)."""
        return self._stats.setdefault(login, LoginStats())

    def _count(self, login: str, field_name: str, n: int = 1, reason: str | None = None) -> None:
        with self._stats_lock:
            st = self._with_stats(login)
            setattr(st, field_name, getattr(st, field_name) + n)
            if reason is not None:
                st.reasons[reason] = st.reasons.get(reason, 0) + 1

    def _note_difficulty(self, s: Session, now: float, *, fresh: bool = False) -> None:
        with self._stats_lock:
            st = self._with_stats(s.login)
            st.difficulty = s.vardiff.diff
            base = st.first_login or now
            if fresh:
                st.difficulties.clear()
            else:
                st.retargets += 1
            st.difficulties.append((now - base, s.vardiff.diff))
            del st.difficulties[:-64]

    # ---- schedule --------------------------------------------------------------------------------

    def _next_refresh(self, now: float) -> float:
        lo, hi = self.config.job_interval_s
        return now + self._rng.uniform(lo, hi)

    def _next_block(self, now: float) -> float:
        mean = self.config.block_time_s
        return math.inf if mean is None else now + self._rng.expovariate(1.0 / mean)

    async def _chain_loop(self) -> None:
        """New blocks (exponential arrivals) and template refreshes (uniform in ``job_interval_s``), pushed
        to every connection at once, as a pool does for everyone mining the same chain."""
        now = time.monotonic()
        next_refresh, next_block = self._next_refresh(now), self._next_block(now)
        while True:
            wait = max(0.0, min(next_refresh, next_block) - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._block_now.wait(), timeout=min(wait, 3600.0))
            now = time.monotonic()
            if self._block_now.is_set() or now >= next_block:
                self._block_now.clear()
                self.chain.new_block()
                next_block = self._next_block(now)
                log.debug("new block at height %d", self.chain.height)
            elif now < next_refresh:
                continue
            next_refresh = self._next_refresh(now)
            for s in list(self._sessions.values()):
                await self._push_job(s)

    async def _tick_loop(self) -> None:
        """Once a second: vardiff for every connection, and the idle timeout."""
        while True:
            await asyncio.sleep(_TICK_S)
            now = time.monotonic()
            for s in list(self._sessions.values()):
                if now - s.last_seen > self.config.idle_timeout_s:
                    log.info("closing idle connection of %s", s.login)
                    s.writer.close()
                    self._sessions.pop(s.sid, None)
                elif s.vardiff.due(now):
                    await self._retarget(s, now)

    async def _retarget(self, s: Session, now: float) -> None:
        if s.vardiff.retarget(now) is not None:
            self._note_difficulty(s, now)
            await self._push_job(s)

    # ---- jobs ------------------------------------------------------------------------------------

    def _new_job(self, s: Session) -> Job:
        job = self.chain.job(s.algo, s.vardiff.diff)
        stale = [jid for jid, j in s.jobs.items() if j.height < job.height]
        for jid in stale:
            del s.jobs[jid]
        s.jobs[job.job_id] = job
        while len(s.jobs) > _JOBS_KEPT:
            s.jobs.popitem(last=False)
        if stale or len(s.jobs) == _JOBS_KEPT:
            s.seen = {k for k in s.seen if k[0] in s.jobs}
        self._count(s.login, "jobs")
        return job

    async def _send(self, writer: asyncio.StreamWriter, doc: dict[str, Any]) -> None:
        """One line; a peer that stops reading is cut off after ``_SEND_TIMEOUT_S`` (it must not stall the
        pushes to everyone else)."""
        writer.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
        try:
            await asyncio.wait_for(writer.drain(), _SEND_TIMEOUT_S)
        except TimeoutError:
            writer.close()
            msg = "peer does not read"
            raise ConnectionResetError(msg) from None

    async def _push_job(self, s: Session) -> None:
        try:
            await self._send(s.writer, {"jsonrpc": "2.0", "method": "job", "params": self._new_job(s).params()})
        except (ConnectionError, RuntimeError):
            self._sessions.pop(s.sid, None)

    # ---- protocol --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session: Session | None = None
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, ConnectionError):  # ValueError: a line over the limit
                    break
                if not line:
                    break
                if session is not None:
                    session.last_seen = time.monotonic()
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                method, req_id, params = msg.get("method"), msg.get("id"), msg.get("params")
                if not isinstance(params, dict):
                    params = {}
                if method == "login":
                    if session is not None:
                        await self._reply(writer, req_id, error="Already logged in")
                    else:
                        session = await self._login(writer, req_id, params)
                elif method == "submit":
                    await self._submit(writer, session, req_id, params)
                elif method == "keepalived":
                    if session is not None:
                        self._count(session.login, "keepalives")
                    await self._reply(writer, req_id, result={"status": "KEEPALIVED"})
                elif method == "getjob":
                    if session is None or params.get("id") != session.sid:
                        await self._reply(writer, req_id, error="Unauthenticated")
                    else:
                        await self._reply(writer, req_id, result=self._new_job(session).params())
                elif method == "stats":
                    await self._reply(writer, req_id, result=self.stats(str(params.get("login", ""))))
                else:
                    await self._reply(writer, req_id, error=f"Unknown method {str(method)[:64]!r}")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if session is not None:
                self._sessions.pop(session.sid, None)
            writer.close()
            self._tasks.discard(task)

    async def _reply(
        self, writer: asyncio.StreamWriter, req_id: Any, *, result: Any = None, error: str | None = None
    ) -> None:
        if not isinstance(req_id, int | str) or isinstance(req_id, bool):
            req_id = None
        msg: dict[str, Any] = {"id": req_id, "jsonrpc": "2.0", "error": None, "result": result}
        if error is not None:
            msg["error"] = {"code": -1, "message": error}
            msg["result"] = None
        await self._send(writer, msg)

    async def _login(self, writer: asyncio.StreamWriter, req_id: Any, params: dict[str, Any]) -> Session | None:
        login = str(params.get("login", ""))[:256]
        wanted = params.get("algo")
        names = [a for a in wanted if isinstance(a, str)] if isinstance(wanted, list) else []
        algo = next((ALGORITHMS[a] for a in names if a in ALGORITHMS), None)
        if not login or algo is None:
            await self._reply(writer, req_id, error=f"Unsupported algorithm {names[:8]!r} (have {sorted(ALGORITHMS)})")
            return None
        now = time.monotonic()
        diff = start_difficulty(str(params.get("pass", ""))) or self.start_diff[algo.name]
        s = Session(secrets.token_hex(8), login, algo, writer, Vardiff(self.config, diff, now), now)
        self._sessions[s.sid] = s
        with self._stats_lock:
            st = self._with_stats(login)
            st.connections += 1
            st.algo = algo.name
            if st.first_login is None:
                st.first_login = now
        self._note_difficulty(s, now, fresh=True)
        job = self._new_job(s)
        result = {"id": s.sid, "job": job.params(), "extensions": ["algo", "keepalive"], "status": "OK"}
        await self._reply(writer, req_id, result=result)
        return s

    async def _submit(self, writer: asyncio.StreamWriter, s: Session | None, req_id: Any, p: dict[str, Any]) -> None:
        """Cheap checks and vardiff accounting now; the proof-of-work check in a task of its own, so that a
        burst of submits (a miner far below its difficulty) is seen, and retargeted, at once."""
        if s is None or p.get("id") != s.sid:
            await self._reply(writer, req_id, error="Unauthenticated")
            return
        job = s.jobs.get(str(p.get("job_id", ""))[:128])
        nonce_hex = str(p.get("nonce", ""))[:64].lower()
        problem = "Block expired" if job is None else self._precheck(s, job, nonce_hex)
        if job is None or problem is not None:
            self._count(s.login, "rejected", reason=problem)
            await self._reply(writer, req_id, error=problem)
            return
        now = time.monotonic()
        s.vardiff.record_share(now, job.diff)
        self._spawn(self._verify(writer, s, job, req_id, nonce_hex, str(p.get("result", ""))[:128]))
        if s.vardiff.due(now):
            await self._retarget(s, now)

    @staticmethod
    def _precheck(s: Session, job: Job, nonce_hex: str) -> str | None:
        try:
            nonce = bytes.fromhex(nonce_hex)
        except ValueError:
            nonce = b""
        if len(nonce) != 4:
            return "Invalid nonce"
        key = (job.job_id, nonce_hex)
        if key in s.seen:
            return "Duplicate share"
        s.seen.add(key)
        return None

    async def _verify(
        self, writer: asyncio.StreamWriter, s: Session, job: Job, req_id: Any, nonce_hex: str, claimed: str
    ) -> None:
        data = with_nonce(job.blob, job.algo, bytes.fromhex(nonce_hex))
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(self._executor, self.verifier.hash, job.algo.name, data, job.seed)
        problem = None
        if claimed and claimed.lower() != digest.hex():
            problem = "Invalid share: the hash does not match"
        elif not meets_target(digest, target_from_compact(job.target_hex)):
            problem = "Low difficulty share"
        if problem is None:
            now = time.monotonic()
            with self._stats_lock:
                st = self._with_stats(s.login)
                st.accepted += 1
                st.hashes += job.diff
                st.last_share = now
                st.share_times.append(now - (st.first_login or now))
        else:
            self._count(s.login, "rejected", reason=problem)
        try:
            if problem is None:
                await self._reply(writer, req_id, result={"status": "OK"})
            else:
                await self._reply(writer, req_id, error=problem)
        except (ConnectionError, RuntimeError):
            pass

"""A loopback stratum pool for the lab's miners (XMRig's JSON-RPC dialect, one JSON object per line).

It binds 127.0.0.1 only. A miner logs in (``login``: login, pass, agent, the algorithms it mines), gets a
session id and a job (``blob``, ``job_id``, ``target``, ``algo``, ``height``, ``seed_hash``), and later
``job`` notifications: a fresh job every ``job_interval_s`` and whenever the difficulty is retargeted
(vardiff: each connection is steered towards one share every ``share_interval_s``). ``submit`` carries a
nonce and the hash; the pool recomputes the proof of work (see ``minerlens_lab.miners.pow``), checks it
against the job's target, rejects duplicates and unknown jobs, and counts accepted/rejected shares per
login. ``keepalived`` is answered with ``KEEPALIVED``. A ``stats`` request (``{"method": "stats",
"params": {"login": ...}}``, no login needed) returns a login's counters: that is how a workload's
``check`` asks, through ``query_stats``.

``PoolServer`` runs on an asyncio loop; ``PoolThread`` runs one in a background thread for synchronous
callers (the lab runner, tests)::

    with PoolThread(cache_dir) as pool:
        ctx.pool = pool.address
        ...
        pool.stats(login)  # {"accepted": .., "rejected": .., "connections": .., ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import struct
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minerlens_lab.miners.pow import (
    ALGORITHMS,
    Algorithm,
    Verifier,
    compact_target,
    meets_target,
    target_from_compact,
    with_nonce,
)

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
_JOBS_KEPT = 16
"""jobs a connection may still submit shares for (vardiff pushes a job at each retarget)"""
_RETARGET_SHARES = 10
"""retarget at once after this many shares: enough for a hash-rate estimate"""
_MIN_DIFF_DIVISOR = 64
"""vardiff never goes below an algorithm's start difficulty divided by this"""
_LINE_LIMIT = 64 * 1024


@dataclass
class LoginStats:
    accepted: int = 0
    rejected: int = 0
    connections: int = 0
    keepalives: int = 0
    hashes: int = 0
    """sum of the difficulty of the accepted shares: the expected number of hashes behind them"""
    first_login: float | None = None
    last_share: float | None = None
    algo: str = ""
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        span = (self.last_share - self.first_login) if self.first_login and self.last_share else 0.0
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "connections": self.connections,
            "keepalives": self.keepalives,
            "hashes": self.hashes,
            "hashrate": round(self.hashes / span, 1) if span > 0 else 0.0,
            "algo": self.algo,
            "reasons": dict(self.reasons),
        }


@dataclass
class Job:
    job_id: str
    algo: Algorithm
    blob: bytes
    diff: int
    target_hex: str
    seed: bytes
    height: int

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "blob": self.blob.hex(),
            "job_id": self.job_id,
            "target": self.target_hex,
            "algo": self.algo.name,
            "height": self.height,
        }
        if self.algo.seeded:
            out["seed_hash"] = self.seed.hex()
        return out


@dataclass
class _Session:
    sid: str
    login: str
    algo: Algorithm
    writer: asyncio.StreamWriter
    diff: int
    jobs: OrderedDict[str, Job] = field(default_factory=OrderedDict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    window_start: float = field(default_factory=time.monotonic)
    window_hashes: int = 0
    window_shares: int = 0
    retargets: int = 0
    last_job: float = field(default_factory=time.monotonic)


class PoolServer:
    """The pool. ``await start()`` binds and serves; ``await stop()`` closes every connection."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        port: int = 0,
        job_interval_s: float = 10.0,
        share_interval_s: float = 1.0,
        start_diff: dict[str, int] | None = None,
        seed: bytes | None = None,
    ) -> None:
        self.port = port
        self.job_interval_s = job_interval_s
        self.share_interval_s = share_interval_s
        self.start_diff = {name: a.start_diff for name, a in ALGORITHMS.items()} | (start_diff or {})
        self.seed = seed or secrets.token_bytes(32)
        self.verifier = Verifier(cache_dir)
        self._stats: dict[str, LoginStats] = {}
        self._stats_lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._sessions: dict[str, _Session] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool-verify")
        self._height = 3_000_000
        self._job_seq = 0

    # ---- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, HOST, self.port, limit=_LINE_LIMIT)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("stratum pool listening on %s:%d", HOST, self.port)
        return HOST, self.port

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

    # ---- stats -----------------------------------------------------------------------------------

    def stats(self, login: str) -> dict[str, Any]:
        with self._stats_lock:
            return (self._stats.get(login) or LoginStats()).as_dict()

    def all_stats(self) -> dict[str, dict[str, Any]]:
        with self._stats_lock:
            return {k: v.as_dict() for k, v in self._stats.items()}

    def _account(self, login: str, **delta: Any) -> None:
        with self._stats_lock:
            st = self._stats.setdefault(login, LoginStats())
            for key, value in delta.items():
                if key == "reason":
                    st.reasons[value] = st.reasons.get(value, 0) + 1
                elif key in ("algo", "first_login", "last_share"):
                    if key != "first_login" or st.first_login is None:
                        setattr(st, key, value)
                else:
                    setattr(st, key, getattr(st, key) + value)

    # ---- jobs ------------------------------------------------------------------------------------

    def _new_job(self, s: _Session) -> Job:
        self._job_seq += 1
        algo = s.algo
        if algo.blob_len == 80:  # a Bitcoin/Litecoin block header: version, prev, merkle root, time, bits, nonce
            blob = (
                struct.pack("<I", 0x2000_0000)
                + secrets.token_bytes(64)
                + struct.pack("<II", int(time.time()), 0x1D00_FFFF)
                + bytes(4)
            )
        else:  # a Monero hashing blob: major/minor version, timestamp..., nonce at 39, tree root, tx count
            blob = bytes([16, 16]) + secrets.token_bytes(37) + bytes(4) + secrets.token_bytes(33)
        job = Job(
            job_id=f"{self._job_seq:08x}{secrets.token_hex(4)}",
            algo=algo,
            blob=blob,
            diff=s.diff,
            target_hex=compact_target(s.diff),
            seed=self.seed,
            height=self._height + self._job_seq,
        )
        s.jobs[job.job_id] = job
        while len(s.jobs) > _JOBS_KEPT:
            old, _ = s.jobs.popitem(last=False)
            s.seen = {k for k in s.seen if k[0] != old}
        return job

    async def _send(self, s: _Session, msg: dict[str, Any]) -> None:
        s.writer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        await s.writer.drain()

    async def _push_job(self, s: _Session) -> None:
        s.last_job = time.monotonic()
        await self._send(s, {"jsonrpc": "2.0", "method": "job", "params": self._new_job(s).params()})

    def _retarget(self, s: _Session) -> bool:
        """Vardiff: aim at one share per ``share_interval_s``; returns whether the difficulty changed.

        Without a share in the window there is no hash-rate estimate: lower the difficulty 4x (not below
        the algorithm's floor). With shares, move towards the estimate, by at most 4x, or 64x once
        ``_RETARGET_SHARES`` shares make the estimate reliable (a miner that was slow to start, such as
        RandomX building its dataset, otherwise floods the pool for several windows)."""
        elapsed = max(1e-3, time.monotonic() - s.window_start)
        wanted = s.window_hashes / elapsed * self.share_interval_s if s.window_shares else s.diff / 4
        up = 64 if s.window_shares >= _RETARGET_SHARES else 4
        floor = max(1, self.start_diff[s.algo.name] // _MIN_DIFF_DIVISOR)
        new = max(floor, int(min(max(wanted, s.diff / 4), s.diff * up)))
        s.window_start, s.window_hashes, s.window_shares = time.monotonic(), 0, 0
        s.retargets += 1
        if abs(new - s.diff) <= 0.2 * s.diff:
            return False
        s.diff = new
        return True

    async def _job_loop(self, s: _Session) -> None:
        """A retarget 1.5 s after login, then every 4 s (2 s while no share comes; at once after
        ``_RETARGET_SHARES`` shares: see ``_submit``); a new job at each difficulty change and every
        ``job_interval_s``."""
        while True:
            await asyncio.sleep(0.5)
            window = 1.5 if s.retargets == 0 else 4.0 if s.window_shares else 2.0
            changed = time.monotonic() - s.window_start >= window and self._retarget(s)
            if changed or time.monotonic() - s.last_job >= self.job_interval_s:
                await self._push_job(s)

    # ---- protocol --------------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        session: _Session | None = None
        job_loop: asyncio.Task[None] | None = None
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, ConnectionError):
                    break
                if not line:
                    break
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                method, req_id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
                if method == "login":
                    if session is not None:
                        await self._reply(writer, req_id, error="Already logged in")
                        continue
                    session = await self._login(writer, req_id, params)
                    if session is not None:
                        job_loop = asyncio.create_task(self._job_loop(session))
                elif method == "submit":
                    await self._submit(writer, session, req_id, params)
                elif method == "keepalived":
                    if session is not None:
                        self._account(session.login, keepalives=1)
                    await self._reply(writer, req_id, result={"status": "KEEPALIVED"})
                elif method == "stats":
                    login = str(params.get("login", ""))
                    await self._reply(writer, req_id, result=self.stats(login))
                else:
                    await self._reply(writer, req_id, error=f"Unknown method {method!r}")
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            if job_loop is not None:
                job_loop.cancel()
            if session is not None:
                self._sessions.pop(session.sid, None)
            writer.close()
            self._tasks.discard(task)

    async def _reply(
        self, writer: asyncio.StreamWriter, req_id: Any, *, result: Any = None, error: str | None = None
    ) -> None:
        msg: dict[str, Any] = {"id": req_id, "jsonrpc": "2.0", "error": None, "result": result}
        if error is not None:
            msg["error"] = {"code": -1, "message": error}
            msg["result"] = None
        writer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        await writer.drain()

    async def _login(self, writer: asyncio.StreamWriter, req_id: Any, params: dict[str, Any]) -> _Session | None:
        login = str(params.get("login", ""))
        wanted = params.get("algo") or []
        algo = next((ALGORITHMS[a] for a in wanted if a in ALGORITHMS), None)
        if not login or algo is None:
            await self._reply(writer, req_id, error=f"Unsupported algorithm {wanted!r} (have {sorted(ALGORITHMS)})")
            return None
        s = _Session(secrets.token_hex(8), login, algo, writer, self.start_diff[algo.name])
        self._sessions[s.sid] = s
        self._account(login, connections=1, algo=algo.name, first_login=time.monotonic())
        job = self._new_job(s)
        result = {"id": s.sid, "job": job.params(), "extensions": ["algo", "keepalive"], "status": "OK"}
        await self._reply(writer, req_id, result=result)
        return s

    async def _submit(self, writer: asyncio.StreamWriter, s: _Session | None, req_id: Any, p: dict[str, Any]) -> None:
        """Cheap checks and vardiff accounting now; the proof-of-work check in a task of its own, so that a
        burst of submits (a miner that was slow to start) is seen, and retargeted, at once."""
        if s is None or p.get("id") != s.sid:
            await self._reply(writer, req_id, error="Unauthenticated")
            return
        job = s.jobs.get(str(p.get("job_id", "")))
        nonce_hex = str(p.get("nonce", "")).lower()
        problem = "Block expired" if job is None else self._precheck(s, job, nonce_hex)
        if job is None or problem is not None:
            self._account(s.login, rejected=1, reason=problem)
            await self._reply(writer, req_id, error=problem)
            return
        s.window_hashes += job.diff
        s.window_shares += 1
        verify = asyncio.create_task(self._verify(writer, s, job, req_id, nonce_hex, str(p.get("result", ""))))
        self._tasks.add(verify)
        verify.add_done_callback(self._tasks.discard)
        if s.window_shares >= _RETARGET_SHARES and self._retarget(s):
            await self._push_job(s)

    @staticmethod
    def _precheck(s: _Session, job: Job, nonce_hex: str) -> str | None:
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
        self, writer: asyncio.StreamWriter, s: _Session, job: Job, req_id: Any, nonce_hex: str, claimed: str
    ) -> None:
        data = with_nonce(job.blob, job.algo, bytes.fromhex(nonce_hex))
        loop = asyncio.get_running_loop()
        digest = await loop.run_in_executor(self._executor, self.verifier.hash, job.algo.name, data, job.seed)
        problem = None
        if claimed and claimed.lower() != digest.hex():
            problem = "Invalid share: the hash does not match"
        elif not meets_target(digest, target_from_compact(job.target_hex)):
            problem = "Low difficulty share"
        try:
            if problem is None:
                self._account(s.login, accepted=1, hashes=job.diff, last_share=time.monotonic())
                await self._reply(writer, req_id, result={"status": "OK"})
            else:
                self._account(s.login, rejected=1, reason=problem)
                await self._reply(writer, req_id, error=problem)
        except ConnectionError:
            pass


class PoolThread:
    """A ``PoolServer`` on its own event loop in a daemon thread; a context manager."""

    def __init__(self, cache_dir: Path, *, warm_up: tuple[str, ...] = ("rx/0", "cn-like"), **kwargs: Any) -> None:
        self.server = PoolServer(cache_dir, **kwargs)
        self._warm = warm_up
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="stratum-pool", daemon=True)
        self.address: tuple[str, int] = (HOST, 0)

    def start(self) -> tuple[str, int]:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self.server.start(), self._loop)
        self.address = fut.result(timeout=10)
        if self._warm:
            asyncio.run_coroutine_threadsafe(self.server.warm_up(self._warm), self._loop).result(timeout=120)
        return self.address

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def stats(self, login: str) -> dict[str, Any]:
        return self.server.stats(login)

    def __enter__(self) -> PoolThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def query_stats(address: tuple[str, int], login: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """Ask a running pool (any process) for a login's share counters."""
    with socket.create_connection(address, timeout=timeout_s) as sock:
        req = {"id": 1, "jsonrpc": "2.0", "method": "stats", "params": {"login": login}}
        sock.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if reply.get("error"):
        msg = f"pool stats for {login!r}: {reply['error']}"
        raise RuntimeError(msg)
    result: dict[str, Any] = reply["result"]
    return result


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "minerlens" / "lab"

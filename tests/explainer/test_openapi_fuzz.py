"""Schemathesis against the OpenAPI spec of a live server (uvicorn, real HTTP, real Redis and model):
no generated request, valid or not, gets a 5xx; responses conform to the documented schemas."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from minerlens_core.schemas.windows import FeatureWindow
from minerlens_explainer.app import create_app
from minerlens_explainer.runtime import Runtime
from minerlens_explainer.settings import ExplainerSettings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from tests.explainer.conftest import Artifacts, Tokens, purge
from tests.explainer.factory import verdict_for
from tests.explainer.test_pods import MODEL
from tests.integration.services import require_redis

pytestmark = [pytest.mark.redis, pytest.mark.slow]

EXCLUDED = [positive_data_acceptance, negative_data_rejection]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _seed(s: ExplainerSettings, windows: list[FeatureWindow]) -> None:
    """A pod with windows and verdicts, so the pod routes also answer 200 (a runtime of its own)."""
    rt = Runtime.create(s)
    try:
        ing = rt.ingestor()
        for w in windows:
            await ing.handle(s.windows_topic, w.model_dump_json().encode())
            await ing.handle(s.verdicts_topic, verdict_for(w, 0.9, MODEL).model_dump_json().encode())
    finally:
        await rt.close()


@pytest.fixture(scope="module")
def live_url(artifacts: Artifacts, tokens: Tokens, miner_windows: list[FeatureWindow]) -> Iterator[str]:
    url = require_redis()
    tag = uuid.uuid4().hex[:10]
    prefix = f"test:explainer:{tag}:"
    s = ExplainerSettings(
        tokens_file=tokens.path, models=[artifacts.v1], redis_url=url, key_prefix=prefix, ingest=False,
        redis_timeout_s=5.0, audit_topic=f"test.audit.{tag}", suppressions_topic=f"test.suppressions.{tag}",
        method_params={"lime": {"num_samples": 300}},
    )  # fmt: skip
    asyncio.run(_seed(s, miner_windows[:4]))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(s), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
        purge(url, prefix)


def _operations(live_url: str) -> list[schemathesis.APIOperation]:
    schema = schemathesis.openapi.from_url(f"{live_url}/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode), ids=lambda m: m.value)
def test_no_server_errors(live_url: str, tokens: Tokens, mode: schemathesis.GenerationMode) -> None:
    """Every operation, positive (schema-valid) and negative (schema-violating) generated requests.

    All of schemathesis' checks run (no 5xx, documented status codes and content types, responses
    conform to their schemas, ...) except two that do not apply:

    * ``positive_data_acceptance``: a schema-valid request can still not fit the loaded model (a feature
      vector of another length, a method no loaded model supports): a 422 with a message, by design;
    * ``negative_data_rejection``: unknown query parameters are ignored (as HTTP APIs do), and the
      "missing Authorization header" variants are moot because the test always sends its token.
    """
    operations = _operations(live_url)
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "GET /v1/pods", "GET /v1/pods/{namespace}/{pod}", "GET /v1/pods/{namespace}/{pod}/explanation",
        "POST /v1/explain", "GET /v1/models", "GET /healthz", "GET /readyz", "GET /metrics",
    }  # fmt: skip
    for op in operations:

        @given(case=op.as_strategy(mode))
        @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)  # fmt: skip
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=tokens.auth("admin"), excluded_checks=EXCLUDED)

        try:
            run()
        except Unsatisfiable:
            # nothing to get wrong in an operation without parameters and body (e.g. GET /healthz)
            if mode is not schemathesis.GenerationMode.NEGATIVE or _has_inputs(op):
                raise


def _has_inputs(op: schemathesis.APIOperation) -> bool:
    return any(len(group) for group in (op.path_parameters, op.query, op.body))

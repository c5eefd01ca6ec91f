"""The composition root: everything a request or the ingestion needs, built once per process."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from minerlens_core.kafka import ConsumerProgress
from minerlens_core.settings import KafkaSettings

from minerlens_explainer.auth import TokenFile
from minerlens_explainer.backend import ExplainerBackend, TrainingBackend
from minerlens_explainer.cache import SingleFlight
from minerlens_explainer.console.reference import BenignReference
from minerlens_explainer.console.session import SessionStore
from minerlens_explainer.explaining import Explaining
from minerlens_explainer.ingest import Ingestor, IngestStatus, IngestTopics, KafkaIngest
from minerlens_explainer.metrics import Metrics
from minerlens_explainer.operator_actions import OperatorActions
from minerlens_explainer.operator_store import OperatorStore
from minerlens_explainer.publishing import Publisher
from minerlens_explainer.rebuild import StoreRebuild
from minerlens_explainer.redis_link import RedisLink
from minerlens_explainer.registry import ModelRegistry
from minerlens_explainer.settings import ExplainerSettings
from minerlens_explainer.store import PodStore

log = logging.getLogger(__name__)


def limit_native_threads(n: int) -> None:
    """Executor thread initializer: at most ``n`` OpenMP/BLAS threads per explanation.

    XGBoost predicts (SHAP/LIME score perturbations) with every core by default; several requests at
    once then oversubscribe the CPU and OpenMP's spinning threads make one explanation ~10x slower
    on a busy node. Requests run in parallel over ``workers`` threads instead.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover (installed with scikit-learn)
        log.warning("threadpoolctl is missing: explanations use every core per request")
        return
    threadpool_limits(limits=n)


@dataclass
class Runtime:
    """Everything a request needs, built once per process (``Runtime.create``)."""

    settings: ExplainerSettings
    tokens: TokenFile
    metrics: Metrics
    link: RedisLink
    store: PodStore
    registry: ModelRegistry
    flight: SingleFlight
    explaining: Explaining
    executor: ThreadPoolExecutor
    kafka: KafkaSettings
    ingest_status: IngestStatus = field(default_factory=IngestStatus)
    ingest_progress: ConsumerProgress | None = None
    """the ingestion's progress (``/healthz``), set when this process ingests"""
    ops: OperatorStore = field(init=False)
    """suppression rules and feedback (Redis)"""
    publisher: Publisher = field(init=False)
    actions: OperatorActions = field(init=False)
    sessions: SessionStore = field(init=False)
    reference: BenignReference = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.ops = OperatorStore(self.link, s.key_prefix)
        self.publisher = Publisher(self.kafka, audit_topic=s.audit_topic, suppressions_topic=s.suppressions_topic,
                                   timeout_s=s.publish_timeout_s)  # fmt: skip
        self.actions = OperatorActions(self.store, self.ops, self.publisher)
        self.sessions = SessionStore(self.link, s.key_prefix, s.console_session_ttl_s)
        self.reference = BenignReference()

    @classmethod
    def create(
        cls, settings: ExplainerSettings, backend: ExplainerBackend | None = None, kafka: KafkaSettings | None = None
    ) -> Runtime:
        """Check tokens and load models now: a misconfigured service fails at start, not on first request."""
        tokens = TokenFile(settings.tokens_file)
        metrics = Metrics()
        link = RedisLink(settings.redis_url, settings.redis_timeout_s, settings.redis_retry_s)
        link.on_change = lambda up: metrics.redis_up.set(1 if up else 0)
        store = PodStore(
            link, settings.key_prefix, max_windows=settings.max_windows_per_pod,
            max_verdicts=settings.max_verdicts_per_pod, ttl_s=settings.window_ttl_s,
            alert_ttl_s=settings.alert_ttl_s, max_pods=settings.max_pods_listed,
        )  # fmt: skip
        registry = ModelRegistry(settings.models, backend or TrainingBackend(), settings.method_params)
        flight = SingleFlight(
            link, ttl_s=settings.cache_ttl_s, lock_ttl_ms=settings.lock_ttl_ms,
            wait_timeout_s=settings.wait_timeout_s, on_status=metrics.cache_result,
        )  # fmt: skip
        executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="explain", initializer=limit_native_threads,
            initargs=(settings.compute_threads,),
        )  # fmt: skip
        explaining = Explaining(registry, flight, executor, metrics, settings.key_prefix)
        return cls(settings, tokens, metrics, link, store, registry, flight, explaining, executor,
                   kafka or KafkaSettings())  # fmt: skip

    def ingestor(self) -> Ingestor:
        s = self.settings
        return Ingestor(self.store, IngestTopics(s.windows_topic, s.verdicts_topic, s.alerts_topic))

    def kafka_ingest(self) -> KafkaIngest:
        s = self.settings
        ingestor = self.ingestor()
        self.ingest_progress = ConsumerProgress("explainer ingest", s.stall_timeout_s)
        rebuild = None
        if s.rebuild_s > 0:
            rebuild = StoreRebuild(
                self.store, self.kafka, ingestor.topics.all, ingestor.handle, self.metrics, since_s=s.rebuild_s,
                alerts_since_s=max(s.rebuild_alerts_s, s.rebuild_s), max_messages=s.rebuild_max_messages,
                timeout_s=s.rebuild_timeout_s,
            )  # fmt: skip
        return KafkaIngest(
            ingestor, self.kafka, s.group_id, self.metrics, self.ingest_status, progress=self.ingest_progress,
            rebuild=rebuild, check_store_s=s.check_store_s,
        )  # fmt: skip

    def health(self) -> dict[str, object]:
        """Liveness: the ingestion (when this process runs one) is alive and making progress."""
        if self.ingest_progress is None:
            return {"ok": True}
        return self.ingest_progress.health()

    async def close(self) -> None:
        await self.publisher.close()
        await self.link.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

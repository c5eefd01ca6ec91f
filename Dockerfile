# minerlens: one image recipe for every service; build arguments pick the service.
#
#   docker build --build-arg SERVICE=scorer --build-arg PORT=9466 -t minerlens/scorer:0.3.0 .
#   make images                                  (all six, with the arguments below; scripts/images.sh)
#
#   SERVICE    collector | featurizer | scorer | explainer | siem | responder
#   PORT       the service's HTTP port (health, metrics): collector 9464, featurizer 6066, scorer 9466,
#              explainer 8080, siem 9466, responder 9468
#   UID        10001 (every service but the collector) | 0 (the collector, on purpose: it creates a tracefs
#              instance under /sys/kernel/tracing, reads /proc/<pid>/cgroup and /proc/<pid>/task of every pod
#              and walks /sys/fs/cgroup; a non-root user with those capabilities would be root in all but name;
#              see deploy/helm/minerlens/templates/collector/)
#   APT        Debian packages the service needs at run time, pinned (the collector: strace=6.1-0.1, its
#              fallback source when tracefs is unusable)
#   FORBIDDEN  libraries that must NOT be in the image (the build fails if one is): ML and streaming libraries
#              stay out of the serving images; only the explainer has SHAP/LIME, only the featurizer Faust
#
# Third-party dependencies come from requirements/lock/<service>.txt, pinned with hashes (bash scripts/lock.sh)
# and installed with --require-hashes; the project's own packages are installed from the source tree with
# --no-deps. Runs as UID (non-root but for the collector); k8s: runAsNonRoot, readOnlyRootFilesystem.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG SERVICE
ARG FORBIDDEN="torch onnxruntime sklearn shap lime xgboost faust"
WORKDIR /src
COPY requirements/lock requirements/lock
COPY packages/core packages/core
COPY services services
COPY training training
# the explainer also installs minerlens-training (its explainers; the 'explain' extra, never 'deep': no torch)
# hadolint ignore=SC2086
RUN test -n "${SERVICE}" && test -f "requirements/lock/${SERVICE}.txt" \
    && python -m venv /opt/minerlens \
    && /opt/minerlens/bin/pip install --no-cache-dir --disable-pip-version-check --require-hashes \
        -r "requirements/lock/${SERVICE}.txt" \
    && own="./packages/core ./services/${SERVICE}" \
    && if [ "${SERVICE}" = explainer ]; then own="./packages/core ./training ./services/${SERVICE}"; fi \
    && /opt/minerlens/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps ${own} \
    && /opt/minerlens/bin/pip check \
    && /opt/minerlens/bin/python -c "import importlib.util as u, sys; \
bad = [m for m in sys.argv[1].split() if u.find_spec(m)]; \
sys.exit(f'forbidden libraries in the {sys.argv[2]} image: {bad}' if bad else 0)" "${FORBIDDEN}" "${SERVICE}"

FROM ${PYTHON_IMAGE}
ARG SERVICE
ARG PORT=9466
ARG UID=10001
ARG APT=""
ARG VERSION=0.3.0
# hadolint ignore=DL3056
LABEL org.opencontainers.image.title="minerlens-${SERVICE}" \
      org.opencontainers.image.description="minerlens ${SERVICE}: cryptominer detection in Kubernetes pods from syscalls" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# hadolint ignore=DL3008,SC2086
RUN if [ -n "${APT}" ]; then \
        apt-get update && apt-get install -y --no-install-recommends ${APT} && rm -rf /var/lib/apt/lists/*; \
    fi \
    && groupadd --gid 10001 minerlens \
    && useradd --uid 10001 --gid 10001 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin minerlens
COPY --from=build /opt/minerlens /opt/minerlens
# Every service reads only its own MINERLENS_<SERVICE>_* variables: listening on all interfaces and the
# standard ports and paths are set for all of them, MINERLENS_SERVICE names the one this image runs.
ENV PATH=/opt/minerlens/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MINERLENS_SERVICE=${SERVICE} \
    MINERLENS_HEALTH_PORT=${PORT} \
    MINERLENS_COLLECTOR_HTTP_HOST=0.0.0.0 \
    MINERLENS_COLLECTOR_HTTP_PORT=9464 \
    MINERLENS_FEATURIZER_WEB_BIND=0.0.0.0 \
    MINERLENS_FEATURIZER_WEB_PORT=6066 \
    MINERLENS_FEATURIZER_DATA_DIR=/var/lib/minerlens/featurizer \
    MINERLENS_SCORER_HTTP_HOST=0.0.0.0 \
    MINERLENS_SCORER_HTTP_PORT=9466 \
    MINERLENS_SCORER_MODELS_DIR=/models \
    MINERLENS_EXPLAINER_HOST=0.0.0.0 \
    MINERLENS_EXPLAINER_PORT=8080 \
    MINERLENS_SIEM_METRICS_HOST=0.0.0.0 \
    MINERLENS_SIEM_METRICS_PORT=9466 \
    MINERLENS_RESPONDER_HTTP_HOST=0.0.0.0 \
    MINERLENS_RESPONDER_HTTP_PORT=9468 \
    MINERLENS_RESPONDER_POLICY_FILE=/etc/minerlens/responder/policy.yaml \
    NUMBA_CACHE_DIR=/tmp/numba \
    MPLCONFIGDIR=/tmp/matplotlib
USER ${UID}:${UID}
EXPOSE ${PORT}
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ['MINERLENS_HEALTH_PORT'], timeout=4)"]
ENTRYPOINT ["minerlens"]
# `minerlens serve` runs `minerlens $MINERLENS_SERVICE run`; Kubernetes and compose pass ["<service>", "run"]
CMD ["serve"]

.PHONY: help demo test lint fuzz lock images bench-collector bench-pipeline bench-soak
help:            ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'
demo:            ## the main job: real pods captured, streamed to a local Kafka, summarised per pod
	bash scripts/demo.sh
test:            ## the test command (what CI runs): install, start Kafka+Redis, lint, pytest
	bash scripts/test.sh
lint:            ## ruff + import contracts
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports
lock:            ## re-resolve the dependency locks of the images and of dev/CI (requirements/lock/*.txt, hashes; uv)
	bash scripts/lock.sh
images:          ## build the six service images from the one Dockerfile (docker, else buildah)
	bash scripts/images.sh
fuzz:            ## long fuzzing: FUZZ_RUNS atheris inputs per boundary (100000), FUZZ_EXAMPLES hypothesis ones (0: skip)
	.venv/bin/python -m tests.fuzz.run --runs $(or $(FUZZ_RUNS),100000) --examples $(or $(FUZZ_EXAMPLES),0) $(if $(FUZZ_OUT),--out $(FUZZ_OUT))
bench-collector: ## capture throughput, loss and overhead numbers; resource sampler and fd tagger cost
	.venv/bin/python bench/collector_capture.py && .venv/bin/python bench/collector_overhead.py && \
	.venv/bin/python bench/collector_resources.py
bench-pipeline:  ## featurizer throughput, scorer and explainer latency, alert latency (needs Kafka + Redis up)
	.venv/bin/python bench/featurizer_throughput.py && .venv/bin/python bench/scorer_latency.py && \
	.venv/bin/python bench/explainer_latency.py && .venv/bin/python bench/alert_latency.py
bench-soak:      ## false alerts per benign pod-hour: benign lab pods side by side on the live pipeline (SOAK_MINUTES, 30)
	.venv/bin/python bench/benign_soak.py --minutes $(or $(SOAK_MINUTES),30)

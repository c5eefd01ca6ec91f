.PHONY: help demo test lint bench-collector bench-pipeline
help:            ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'
demo:            ## the main job: real pods captured, streamed to a local Kafka, summarised per pod
	bash scripts/demo.sh
test:            ## the test command (what CI runs): install, start Kafka+Redis, lint, pytest
	bash scripts/test.sh
lint:            ## ruff + import contracts
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/lint-imports
bench-collector: ## capture throughput, loss and overhead numbers
	.venv/bin/python bench/collector_capture.py && .venv/bin/python bench/collector_overhead.py
bench-pipeline:  ## featurizer throughput, scorer and explainer latency, alert latency (needs Kafka + Redis up)
	.venv/bin/python bench/featurizer_throughput.py && .venv/bin/python bench/scorer_latency.py && \
	.venv/bin/python bench/explainer_latency.py && .venv/bin/python bench/alert_latency.py

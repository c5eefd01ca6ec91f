"""The production agent (what the DaemonSet runs): capture sources (tracefs, strace fallback), pod discovery and
attribution, fd table, resource samples, batching, spool, Kafka publisher, Kubernetes metadata, the service loop
and its runner. It never imports ``minerlens_collector.tools`` (import-linter contract)."""

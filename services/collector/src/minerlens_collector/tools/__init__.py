"""Local and dev tooling around the agent: emulated pods (``local_pod``), capture to trace files, replay of
traces into Kafka, watching the syscall topic, and their CLI commands. Uses the agent's pieces, never the
other way round."""

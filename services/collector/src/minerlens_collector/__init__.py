"""minerlens collector: per-node kernel syscall capture, attributed to pods, streamed to Kafka."""

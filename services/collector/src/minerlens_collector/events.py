"""Raw syscall events as columns, the unit every capture source produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass
class RawEvents:
    """Syscall entries in kernel order: time (Unix-epoch ns, -1 when unknown), thread id, syscall nr."""

    ts_ns: npt.NDArray[np.int64]
    tid: npt.NDArray[np.int32]
    nr: npt.NDArray[np.int64]
    missed: int = 0
    per_cpu: dict[int, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.nr.shape[0])

    @classmethod
    def empty(cls) -> RawEvents:
        return cls(np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int64))

    @classmethod
    def concat(cls, parts: list[RawEvents]) -> RawEvents:
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.ts_ns for p in parts]),
            np.concatenate([p.tid for p in parts]),
            np.concatenate([p.nr for p in parts]),
            missed=sum(p.missed for p in parts),
        )

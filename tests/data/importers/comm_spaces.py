"""Workload of perf/comm_spaces.txt: renames itself to "my miner 1" (prctl PR_SET_NAME), then 7 getppid."""

import ctypes
import os

PR_SET_NAME = 15
ctypes.CDLL(None).prctl(PR_SET_NAME, b"my miner 1", 0, 0, 0)
for _ in range(7):
    os.getppid()

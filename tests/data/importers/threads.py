"""Workload of the strace/perf samples: the main thread calls getppid 2 times, workers 3, 6 and 9 times."""

import os
import threading


def work(n: int) -> None:
    for _ in range(n):
        os.getppid()


threads = [threading.Thread(target=work, args=(n,)) for n in (3, 6, 9)]
for t in threads:
    t.start()
for t in threads:
    t.join()
work(2)

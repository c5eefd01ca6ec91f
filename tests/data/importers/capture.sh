#!/bin/sh
# Regenerates the REAL captures of this folder (run as root from this folder; needs strace, perf).
# The sysdig/, tetragon/ and names/ samples are hand-written from the format documentation (see README.md).
set -eu
PY=/usr/bin/python3
mkdir -p strace strace/ff perf
strace -f -tt -C -o strace/ls_f_tt_C.txt ls / >/dev/null
strace -f -tt sleep 0.1 2>strace/sleep_f_tt_stderr.txt
strace -f -tt -C -o strace/threads_f_tt_C.txt $PY -I -S threads.py
strace -f -tt $PY -I -S threads.py 2>strace/threads_f_tt_stderr.txt
rm -f strace/ff/threads.*
strace -ff -ttt -o strace/ff/threads $PY -I -S threads.py
strace -f -ttt -y -k -i -n -T -C -o strace/true_decorated.txt /bin/true
perf record -q -e raw_syscalls:sys_enter -o /tmp/minerlens-ls.perf -- ls / >/dev/null
perf script -i /tmp/minerlens-ls.perf >perf/ls_default.txt
perf script -i /tmp/minerlens-ls.perf -F comm,pid,tid,time,event,trace >perf/ls_pid_tid_nocpu.txt
perf record -q -e raw_syscalls:sys_enter -o /tmp/minerlens-comm.perf -- $PY -I -S comm_spaces.py
perf script -i /tmp/minerlens-comm.perf >perf/comm_spaces.txt
perf record -q -e 'syscalls:sys_enter_*' -o /tmp/minerlens-tp.perf -- ls / >/dev/null
perf script -i /tmp/minerlens-tp.perf >perf/ls_sys_enter_tp.txt
rm -f /tmp/minerlens-ls.perf /tmp/minerlens-comm.perf /tmp/minerlens-tp.perf

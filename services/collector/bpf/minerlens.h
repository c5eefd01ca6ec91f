/* Shared by minerlens.bpf.c and the Python loader (minerlens_collector.agent.ebpf.layout mirrors it:
 * change both, and bump ABI_VERSION). All structs are fixed-size, naturally aligned, padding explicit. */
#ifndef MINERLENS_BPF_H
#define MINERLENS_BPF_H

#define ABI_VERSION 1
#define MAX_NR 1024 /* syscall numbers >= MAX_NR are counted as NR_OTHER, never indexed */
#define NR_OTHER 1023
#define NR_NONE 0xffff /* third position of a pair's ngram_key */

/* loss counters (index into the `loss` per-CPU array) */
enum ml_loss_reason {
    LOSS_COUNTS_FULL = 0, /* syscall count not recorded: counts map full */
    LOSS_NGRAM2_FULL = 1, /* a pair not recorded: ngram2 map full */
    LOSS_NGRAM3_FULL = 2, /* a triple not recorded: ngram3 map full */
    LOSS_THREADS_FULL = 3, /* a thread's context could not be stored (LRU: should not happen) */
    LOSS_SAMPLE_RING_FULL = 4, /* a sampled event did not fit in the ring buffer (reader behind) */
    LOSS_N = 5,
};

/* counters of what the program saw (index into the `seen` per-CPU array) */
enum ml_seen_what {
    SEEN_EVENTS = 0, /* syscalls of filtered-in cgroups */
    SEEN_SAMPLED = 1, /* of those, written to the sample ring */
    SEEN_N = 2,
};

struct ml_config {
    __u32 epoch; /* the window being written; user space bumps it once per window; generation = epoch & 1 */
    __u32 sample_budget; /* events per cgroup and window written to the ring (0: none) */
};

struct ml_cgroup_state { /* written by the program only (user space never races it) */
    __u64 sampled; /* events sampled in window `epoch` */
    __u64 lost; /* records of this cgroup refused (any loss reason), cumulative */
    __u32 epoch;
    __u32 pad;
};

struct ml_count_key { /* one syscall number of one thread in one generation */
    __u64 cgid;
    __u32 tgid;
    __u32 tid;
    __u16 nr;
    __u8 gen;
    __u8 pad[5];
};

struct ml_ngram_key { /* one pair (nc=0: all calls; nc=1: no-cheap calls) or no-cheap triple of one process */
    __u64 cgid;
    __u32 tgid;
    __u16 a, b, c; /* c = NR_NONE for pairs */
    __u8 gen;
    __u8 nc;
    __u8 pad[4];
};

struct ml_thread_ctx { /* the last syscalls of one thread, in the generation they were made in */
    __u64 cgid;
    __u16 last; /* last syscall (any), stored as nr + 1: 0 = none yet */
    __u16 nc1, nc2; /* last two no-cheap syscalls (nc1 most recent), nr + 1 as well */
    __u16 pad;
    __u32 epoch; /* the window they were made in */
    __u32 pad2;
};

struct ml_sample { /* one event of the bounded sample ring */
    __u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
    __u64 cgid;
    __u32 tgid;
    __u32 tid;
    __u32 nr;
    __u32 gen;
};

#endif

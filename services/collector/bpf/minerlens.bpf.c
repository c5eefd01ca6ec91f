// SPDX-License-Identifier: GPL-2.0
/* minerlens in-kernel syscall aggregation (CO-RE, tp_btf/sys_enter).
 *
 * Only tasks whose cgroup v2 id is in `cgroups` (filled by the collector from its cgroup scan) are
 * counted. Per generation (epoch & 1: user space bumps config.epoch once per window, then reads the
 * generation that just closed and deletes what it read) the program keeps:
 *   counts  (cgroup, tgid, tid, syscall)           -> calls
 *   ngram2  (cgroup, tgid, a, b, nc)               -> consecutive pairs of one thread (nc: no-cheap calls only)
 *   ngram3  (cgroup, tgid, a, b, c)                -> consecutive no-cheap triples of one thread
 *   samples: the first config.sample_budget events of each cgroup and window, in a ring buffer.
 * and, per cgroup (ml_cgroups value), a cumulative count of its refused records.
 * The last syscalls of each thread live in task storage (freed by the kernel when the thread exits).
 * Nothing is ever dropped silently: a full map or ring bumps its `loss` counter. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "minerlens.h"

char LICENSE[] SEC("license") = "GPL";
const volatile __u32 abi_version = ABI_VERSION;

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct ml_config);
} ml_config SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct ml_cgroup_state);
} ml_cgroups SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_NR);
    __type(key, __u32);
    __type(value, __u32);
} ml_cheap SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct ml_count_key);
    __type(value, __u64);
} ml_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct ml_ngram_key);
    __type(value, __u64);
} ml_ngram2 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 65536);
    __type(key, struct ml_ngram_key);
    __type(value, __u64);
} ml_ngram3 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_TASK_STORAGE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, int);
    __type(value, struct ml_thread_ctx);
} ml_threads SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 20);
} ml_samples SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, LOSS_N);
    __type(key, __u32);
    __type(value, __u64);
} ml_loss SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, SEEN_N);
    __type(key, __u32);
    __type(value, __u64);
} ml_seen SEC(".maps");

static __always_inline void bump(void *map, __u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(map, &idx);
    if (v)
        *v += 1; /* per-CPU: no atomic needed */
}

static __always_inline void lose(struct ml_cgroup_state *cg, __u8 gen, __u32 reason)
{
    bump(&ml_loss, reason);
    __sync_fetch_and_add(&cg->lost, 1);
}

/* map[key] += 1, inserting 1 when absent; a full map is counted under `reason` (node-wide) and in the
 * cgroup's own loss counter, never an error */
static __always_inline void add_one(void *map, const void *key, struct ml_cgroup_state *cg, __u8 gen, __u32 reason)
{
    __u64 one = 1, *v = bpf_map_lookup_elem(map, key);
    if (v) {
        __sync_fetch_and_add(v, 1);
        return;
    }
    long err = bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
    if (err == -17 /* EEXIST: another CPU inserted it first */) {
        v = bpf_map_lookup_elem(map, key);
        if (v) {
            __sync_fetch_and_add(v, 1);
            return;
        }
    }
    if (err)
        lose(cg, gen, reason);
}

static __always_inline void add_ngram(void *map, struct ml_cgroup_state *cg, __u64 cgid, __u32 tgid, __u16 a,
                                      __u16 b, __u16 c, __u8 gen, __u8 nc, __u32 reason)
{
    struct ml_ngram_key k = {};
    k.cgid = cgid;
    k.tgid = tgid;
    k.a = a;
    k.b = b;
    k.c = c;
    k.gen = gen;
    k.nc = nc;
    add_one(map, &k, cg, gen, reason);
}

SEC("tp_btf/sys_enter")
int BPF_PROG(minerlens_sys_enter, struct pt_regs *regs, long id)
{
    __u64 cgid = bpf_get_current_cgroup_id();
    struct ml_cgroup_state *cg = bpf_map_lookup_elem(&ml_cgroups, &cgid);
    if (!cg)
        return 0;
    __u32 zero = 0;
    struct ml_config *cfg = bpf_map_lookup_elem(&ml_config, &zero);
    if (!cfg)
        return 0;
    __u32 epoch = cfg->epoch;
    __u8 gen = epoch & 1;
    __u64 pid_tgid = bpf_get_current_pid_tgid();
    __u32 tid = (__u32)pid_tgid, tgid = pid_tgid >> 32;
    __u16 nr = (id < 0 || id >= MAX_NR) ? NR_OTHER : (__u16)id;
    bump(&ml_seen, SEEN_EVENTS);

    struct ml_count_key ck = {};
    ck.cgid = cgid;
    ck.tgid = tgid;
    ck.tid = tid;
    ck.nr = nr;
    ck.gen = gen;
    add_one(&ml_counts, &ck, cg, gen, LOSS_COUNTS_FULL);

    __u32 nrk = nr;
    __u32 *is_cheap = bpf_map_lookup_elem(&ml_cheap, &nrk);
    struct ml_thread_ctx *t = bpf_task_storage_get(&ml_threads, bpf_get_current_task_btf(), 0,
                                                BPF_LOCAL_STORAGE_GET_F_CREATE);
    if (!t) {
        lose(cg, gen, LOSS_THREADS_FULL);
    } else {
        if (t->epoch != epoch || t->cgid != cgid || t->last == 0) {
            /* a new window, a new cgroup or a new thread: n-grams never cross those borders.
             * (last == 0 only for fresh zeroed storage: stored values are nr+1, 0 means none) */
            t->cgid = cgid;
            t->epoch = epoch;
            t->last = 0;
            t->nc1 = 0;
            t->nc2 = 0;
        }
        if (t->last)
            add_ngram(&ml_ngram2, cg, cgid, tgid, t->last - 1, nr, NR_NONE, gen, 0, LOSS_NGRAM2_FULL);
        t->last = nr + 1;
        if (!(is_cheap && *is_cheap)) {
            if (t->nc1) {
                add_ngram(&ml_ngram2, cg, cgid, tgid, t->nc1 - 1, nr, NR_NONE, gen, 1, LOSS_NGRAM2_FULL);
                if (t->nc2)
                    add_ngram(&ml_ngram3, cg, cgid, tgid, t->nc2 - 1, t->nc1 - 1, nr, gen, 1, LOSS_NGRAM3_FULL);
            }
            t->nc2 = t->nc1;
            t->nc1 = nr + 1;
        }
    }

    __u32 budget = cfg->sample_budget;
    if (budget && cg->epoch != epoch) {
        cg->epoch = epoch; /* first sampled call of a window (two CPUs racing here: a few samples more) */
        cg->sampled = 0;
    }
    if (budget && cg->sampled < budget) {
        __sync_fetch_and_add(&cg->sampled, 1);
        struct ml_sample *s = bpf_ringbuf_reserve(&ml_samples, sizeof(*s), 0);
        if (!s) {
            lose(cg, gen, LOSS_SAMPLE_RING_FULL);
            return 0;
        }
        s->ts_ns = bpf_ktime_get_ns();
        s->cgid = cgid;
        s->tgid = tgid;
        s->tid = tid;
        s->nr = nr;
        s->gen = gen;
        bpf_ringbuf_submit(s, 0);
        bump(&ml_seen, SEEN_SAMPLED);
    }
    return 0;
}

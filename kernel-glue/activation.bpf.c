// SPDX-License-Identifier: GPL-2.0
/*
 * activation.bpf.c: the kernel half of the upcall path. It owns the BPF maps
 * and the four scheduler tracepoint programs that turn context switches,
 * wakeups and exits of *registered threads of one process* into (a) status
 * words in an mmapable array that the runtime's standby threads poll without
 * syscalls and (b) ghOSt-style records in a ring buffer. It does not decide
 * anything: takeover, parking and policy live in user space. Layouts come
 * from upcall_abi.h; the loader is bpf_glue.cpp (which sets .rodata and the
 * map sizes before load, and owns registration).
 *
 * Cost model: sched_switch and the wakeup tracepoints run for every task on
 * the machine, so each program first compares task->tgid with target_tgid
 * (one load and a compare against a constant the verifier folds) and returns;
 * only threads of the target process pay for the tid -> slot hash lookup.
 * Both paths are counted in the per-CPU counters.
 *
 * Why BPF writers of a slot never race (so a seqlock without a writer-side
 * lock is enough):
 *   The status word and the per-slot private data of thread T are written
 *   only by T's sched_switch (as prev or next), sched_wakeup and
 *   sched_process_exit events, and the kernel already orders those:
 *   - switch-out and switch-in of T both run under the rq lock of T's CPU
 *     (migration holds both rq locks);
 *   - sched_wakeup runs either in ttwu_runnable() under T's rq lock, or after
 *     try_to_wake_up() waited for T->on_cpu == 0 (acquire; cleared with
 *     release in finish_task_switch(), after T's switch-out tracepoint),
 *     then enqueues T under the target rq lock, which T's switch-in needs;
 *   - sched_process_exit runs in T's own context while T is running.
 *   sched_waking is NOT ordered with T's switch-out (it fires under
 *   T->pi_lock before try_to_wake_up() looks at on_rq/on_cpu), which is why
 *   it writes only the waker hint (serialised among wakers by pi_lock) and
 *   never the status word. A writer that still finds seq odd counts a
 *   seq_collision, so a broken assumption shows up in the counters.
 *   This is also why the wakeup transition is taken at sched_wakeup and not
 *   at sched_waking: at sched_waking, T may still be on its way out.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "upcall_abi.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by the loader between open and load; frozen in .rodata afterwards, so
 * the verifier treats them as constants. */
const volatile __u32 target_tgid = 0; /* process whose threads we watch */
const volatile __u32 emit_msgs = 1;   /* 0: status words only, no ring */
const volatile __u32 ring_wakeup = UPCALL_RING_WAKE_NONE; /* see msg_end() */

/* Default sizes; the loader overrides max_entries before load. */
#define UPCALL_BPF_DEFAULT_SLOTS 64
#define UPCALL_BPF_DEFAULT_RING (256 * 1024)
/* One record in the ring: 8-byte header (BPF_RINGBUF_HDR_SZ) + payload. */
#define UPCALL_RING_REC_BYTES (8 + sizeof(struct upcall_msg))

/* tid -> slot. Written by the loader (register/unregister) and by
 * sched_process_exit (delete); read by every program. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UPCALL_BPF_DEFAULT_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} tid_slot SEC(".maps");

/* slot -> status word, mmapped by the loader (see upcall_abi.h for the
 * protocol and the ownership of each field). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, UPCALL_BPF_DEFAULT_SLOTS);
	__type(key, __u32);
	__type(value, struct upcall_status_word);
} status_words SEC(".maps");

/* BPF-private per-slot data. Reset by the loader at registration (before the
 * tid is inserted into tid_slot), then written only by BPF. */
struct slot_priv {
	__u32 msg_seq;   /* last per-slot message seq; serialised writers */
	__u32 announced; /* TASK_NEW sent; serialised writers */
	__u32 waker_tid; /* sched_waking hint; writers serialised by pi_lock */
	__u32 waker_cpu; /* idem */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, UPCALL_BPF_DEFAULT_SLOTS);
	__type(key, __u32);
	__type(value, struct slot_priv);
} slot_privs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, UPCALL_BPF_DEFAULT_RING);
} msgs SEC(".maps");

/* Alerts (struct upcall_alert): switch-outs of threads whose watch field
 * asks for one. Always submitted with a forced wakeup; see upcall_abi.h. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 * 1024); /* the loader sets the same */
} alerts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct upcall_counters);
} counters SEC(".maps");

/* ---- CO-RE compatibility shims ----------------------------------------- */

/* task_struct::state was renamed __state (and narrowed to unsigned int) by
 * 2f064a59a11f "sched: Change task_struct::state", v5.14. */
struct task_struct___new {
	unsigned int __state;
} __attribute__((preserve_access_index));

struct task_struct___old {
	long state;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_state(struct task_struct *t)
{
	struct task_struct___new *n = (void *)t;

	if (bpf_core_field_exists(n->__state))
		return BPF_CORE_READ(n, __state);
	return (__u32)BPF_CORE_READ((struct task_struct___old *)t, state);
}

/* task_cpu(): thread_info.cpu with CONFIG_THREAD_INFO_IN_TASK (x86, arm64
 * since bcf9033e5449 "sched: move CPU field back into thread_info", v5.16),
 * task_struct::cpu on the kernels in between. */
struct task_struct___cpu {
	unsigned int cpu;
} __attribute__((preserve_access_index));

static __always_inline __u32 task_cpu_of(struct task_struct *t)
{
	if (bpf_core_field_exists(t->thread_info.cpu))
		return BPF_CORE_READ(t, thread_info.cpu);
	return BPF_CORE_READ((struct task_struct___cpu *)t, cpu);
}

/* ---- helpers ------------------------------------------------------------ */

static __always_inline struct upcall_counters *counters_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&counters, &zero);
}

/* Status word of a registered tid, or NULL. Checks the word's tid so that a
 * mapping deleted (and the slot reused) while this program ran cannot write
 * the new owner's word. */
static __always_inline struct upcall_status_word *slot_of(__u32 tid, __u32 *slot_out,
							   struct slot_priv **priv_out)
{
	struct upcall_status_word *w;
	__u32 *slotp, slot;

	slotp = bpf_map_lookup_elem(&tid_slot, &tid);
	if (!slotp)
		return NULL;
	slot = *slotp;
	w = bpf_map_lookup_elem(&status_words, &slot);
	if (!w || w->tid != tid)
		return NULL;
	*priv_out = bpf_map_lookup_elem(&slot_privs, &slot);
	if (!*priv_out)
		return NULL;
	*slot_out = slot;
	return w;
}

/* Opens the seqlock write section. __sync_fetch_and_add with its result used
 * compiles to BPF_ATOMIC|BPF_FETCH (needs -mcpu=v3), which every JIT emits
 * fully ordered (x86 lock xadd, arm64 ldaddal): the odd seq becomes visible
 * before any field store below it. Pairs with the reader's first load. */
static __always_inline void word_begin(struct upcall_status_word *w,
				       struct upcall_counters *c)
{
	__u32 old = __sync_fetch_and_add(&w->seq, 1);

	if (old & 1)
		c->seq_collisions++;
}

/* Closes the write section: fully ordered as above, so all field stores are
 * visible before the even seq. Pairs with the reader's acquire fence and
 * second seq load. The asm keeps the fetch form (an unused result would let
 * clang emit the relaxed non-fetch add). */
static __always_inline void word_end(struct upcall_status_word *w)
{
	__u32 old = __sync_fetch_and_add(&w->seq, 1);

	asm volatile("" : : "r"(old) : "memory");
}

/* Reserves and fills a record header; the caller fills the payload and calls
 * msg_end(). The per-slot seq advances even when the ring is full, so the
 * consumer sees the gap. Serialised per slot (see the essay above). */
static __always_inline struct upcall_msg *msg_begin(struct upcall_counters *c,
						    struct slot_priv *sp, __u32 slot,
						    __u32 tid, __u16 type, __u64 now,
						    __u32 cpu)
{
	struct upcall_msg *m;

	if (!emit_msgs)
		return NULL;
	sp->msg_seq++;
	m = bpf_ringbuf_reserve(&msgs, sizeof(*m), 0);
	if (!m) {
		c->msg_drops++;
		return NULL;
	}
	m->type = type;
	m->version = UPCALL_ABI_VERSION;
	m->slot = slot;
	m->tid = tid;
	m->seq = sp->msg_seq;
	m->ts_ns = now;
	m->cpu = cpu;
	m->flags = 0;
	m->payload.raw[0] = 0;
	m->payload.raw[1] = 0;
	return m;
}

/*
 * Ring wakeups (enum upcall_ring_wakeup in upcall_abi.h). A wakeup raises an
 * irq_work inside the traced scheduler event, which on a VM costs microseconds
 * on the very switch the standby is waiting for; so the default is NONE.
 * BLOCKING keeps TASK_ON_CPU / TASK_PREEMPT from waking the consumer: a
 * consumer on the same CPU as a registered thread otherwise forms a loop (its
 * wakeup preempts the thread, which emits PREEMPT, then ON_CPU, which wake it
 * again; measured ~25 extra switches per block). The records that do wake
 * must still wake a sleeping consumer when lazy records are pending, which
 * the kernel's adaptive rule (flags 0: wake only if the consumer has consumed
 * everything before this record) does not do; so when the ring holds more
 * than this record (queried after reserving it, so every earlier record is
 * counted) the wakeup is forced.
 */
static __always_inline void msg_end(struct upcall_counters *c, struct upcall_msg *m)
{
	__u64 flags = 0;

	if (ring_wakeup == UPCALL_RING_WAKE_NONE) {
		flags = BPF_RB_NO_WAKEUP;
	} else if (ring_wakeup == UPCALL_RING_WAKE_BLOCKING) {
		if (m->type == UPCALL_MSG_TASK_ON_CPU || m->type == UPCALL_MSG_TASK_PREEMPT)
			flags = BPF_RB_NO_WAKEUP;
		else if (bpf_ringbuf_query(&msgs, BPF_RB_AVAIL_DATA) > UPCALL_RING_REC_BYTES)
			flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(m, flags);
	c->msgs++;
}

/* TASK_NEW once per registration, before the first event's own message. */
static __always_inline void announce(struct upcall_counters *c, struct slot_priv *sp,
				     __u32 slot, __u32 tid, __u64 now, __u32 cpu)
{
	struct upcall_msg *m;

	if (sp->announced)
		return;
	sp->announced = 1;
	m = msg_begin(c, sp, slot, tid, UPCALL_MSG_TASK_NEW, now, cpu);
	if (m)
		msg_end(c, m);
}

/* Cumulative runtime including the slice that ends now (if it was on CPU). */
static __always_inline __u64 runtime_until(struct upcall_status_word *w, __u64 now)
{
	__u64 rt = w->runtime_ns;

	if (w->state == UPCALL_ST_RUNNING && now > w->last_switch_ns)
		rt += now - w->last_switch_ns;
	return rt;
}

/* ---- sched_switch -------------------------------------------------------- */

static __always_inline int switch_out(struct upcall_counters *c, struct task_struct *p,
				      bool preempt, __u64 now, __u32 cpu)
{
	struct upcall_status_word *w;
	struct slot_priv *sp;
	struct upcall_msg *m;
	__u32 tid = p->pid, slot, kstate, st, watch;
	__u64 rt;

	w = slot_of(tid, &slot, &sp);
	if (!w)
		return 0;
	if (w->state == UPCALL_ST_DEAD)
		return 1;
	announce(c, sp, slot, tid, now, cpu);

	/* Runnable unless the kernel switched it out in a sleep state on its
	 * own accord. A preempt==true switch leaves the task on the run queue
	 * even if __state is already non-zero (preempted between
	 * set_current_state() and schedule()), so it is PREEMPTED. A signal
	 * that aborts the sleep resets __state to TASK_RUNNING before this
	 * tracepoint (try_to_block_task()), so that case is PREEMPTED too. */
	kstate = task_state(p);
	st = (preempt || kstate == UPCALL_KSTATE_RUNNING) ? UPCALL_ST_PREEMPTED
							   : UPCALL_ST_BLOCKED;
	rt = runtime_until(w, now);

	word_begin(w, c);
	w->state = st;
	w->prev_state = kstate;
	w->cpu = cpu;
	w->last_switch_ns = now;
	w->runtime_ns = rt;
	if (st == UPCALL_ST_BLOCKED)
		w->nr_blocks++;
	else
		w->nr_preempts++;
	word_end(w);
	c->handled++;

	/* Nobody watches this thread's core (the window after a takeover, or
	 * a lazy standby asleep): tell the rescue consumer now. A block on
	 * purpose (intent PARKED) is not one. The read of the user-owned field is single-copy; the owner
	 * stored it with release before it could switch out. */
	watch = *(volatile __u32 *)&w->watch;
	if (watch != UPCALL_WATCH_NONE &&
	    ((st == UPCALL_ST_PREEMPTED && watch == UPCALL_WATCH_ALERT) ||
	     (st == UPCALL_ST_BLOCKED &&
	      *(volatile __u32 *)&w->intent == UPCALL_INTENT_NONE))) {
		struct upcall_alert *a = bpf_ringbuf_reserve(&alerts, sizeof(*a), 0);

		if (a) {
			a->version = UPCALL_ABI_VERSION;
			a->state = (__u16)st;
			a->slot = slot;
			a->tid = tid;
			a->prev_state = kstate;
			a->ts_ns = now;
			bpf_ringbuf_submit(a, BPF_RB_FORCE_WAKEUP);
		} else {
			c->msg_drops++;
		}
	}

	if (st == UPCALL_ST_BLOCKED) {
		m = msg_begin(c, sp, slot, tid, UPCALL_MSG_TASK_BLOCKED, now, cpu);
		if (m) {
			m->payload.blocked.prev_state = kstate;
			/* Single-copy read of the user-owned field. */
			m->payload.blocked.intent = *(volatile __u32 *)&w->intent;
			m->payload.blocked.runtime_ns = rt;
			msg_end(c, m);
		}
	} else {
		m = msg_begin(c, sp, slot, tid, UPCALL_MSG_TASK_PREEMPT, now, cpu);
		if (m) {
			m->payload.preempt.prev_state = kstate;
			m->payload.preempt.kernel_preempt = preempt ? 1 : 0;
			m->payload.preempt.runtime_ns = rt;
			msg_end(c, m);
		}
	}
	return 1;
}

static __always_inline int switch_in(struct upcall_counters *c, struct task_struct *p,
				     __u32 prev_tid, __u64 now, __u32 cpu)
{
	struct upcall_status_word *w;
	struct slot_priv *sp;
	struct upcall_msg *m;
	__u32 tid = p->pid, slot;
	__u64 off;

	w = slot_of(tid, &slot, &sp);
	if (!w)
		return 0;
	if (w->state == UPCALL_ST_DEAD)
		return 1;
	announce(c, sp, slot, tid, now, cpu);
	off = (w->last_switch_ns && now > w->last_switch_ns) ? now - w->last_switch_ns : 0;

	word_begin(w, c);
	w->state = UPCALL_ST_RUNNING;
	w->cpu = cpu;
	w->last_switch_ns = now;
	word_end(w);
	c->handled++;

	m = msg_begin(c, sp, slot, tid, UPCALL_MSG_TASK_ON_CPU, now, cpu);
	if (m) {
		m->payload.on_cpu.prev_tid = prev_tid;
		m->payload.on_cpu.off_cpu_ns = off;
		msg_end(c, m);
	}
	return 1;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(upcall_sched_switch, bool preempt, struct task_struct *prev,
	     struct task_struct *next)
{
	struct upcall_counters *c;
	bool mine_prev, mine_next;
	__u32 cpu;
	__u64 now;
	int n = 0;

	/* The first check: is either side ours at all? */
	mine_prev = prev->tgid == (int)target_tgid;
	mine_next = next->tgid == (int)target_tgid;
	c = counters_get();
	if (!c)
		return 0;
	c->events++;
	if (!mine_prev && !mine_next) {
		c->filtered_tgid++;
		return 0;
	}

	now = bpf_ktime_get_ns();
	cpu = bpf_get_smp_processor_id();
	if (mine_prev)
		n += switch_out(c, prev, preempt, now, cpu);
	if (mine_next)
		n += switch_in(c, next, prev->pid, now, cpu);
	if (!n)
		c->filtered_tid++;
	return 0;
}

/* ---- wakeups ------------------------------------------------------------- */

/* Runs in the waker's context (current == waker), under p->pi_lock. Records
 * who woke p for the TASK_WAKEUP message; touches nothing else (see the
 * essay at the top for why the transition waits for sched_wakeup). */
SEC("tp_btf/sched_waking")
int BPF_PROG(upcall_sched_waking, struct task_struct *p)
{
	struct upcall_counters *c;
	struct slot_priv *sp;
	__u32 *slotp, tid;

	if (p->tgid != (int)target_tgid) {
		c = counters_get();
		if (c) {
			c->events++;
			c->filtered_tgid++;
		}
		return 0;
	}
	c = counters_get();
	if (!c)
		return 0;
	c->events++;
	tid = p->pid;
	slotp = bpf_map_lookup_elem(&tid_slot, &tid);
	if (!slotp) {
		c->filtered_tid++;
		return 0;
	}
	sp = bpf_map_lookup_elem(&slot_privs, slotp);
	if (!sp)
		return 0;
	sp->waker_tid = (__u32)bpf_get_current_pid_tgid();
	sp->waker_cpu = bpf_get_smp_processor_id();
	return 0;
}

/* Runs after p was queued on a run queue: ordered after p's switch-out and
 * before its next switch-in. Current may be the waker or, when the wakeup
 * went through the target CPU's wake list, whatever runs there; the waker
 * therefore comes from the sched_waking hint. */
SEC("tp_btf/sched_wakeup")
int BPF_PROG(upcall_sched_wakeup, struct task_struct *p)
{
	struct upcall_status_word *w;
	struct upcall_counters *c;
	struct slot_priv *sp;
	struct upcall_msg *m;
	__u32 tid, slot, cpu;
	__u64 now;

	if (p->tgid != (int)target_tgid) {
		c = counters_get();
		if (c) {
			c->events++;
			c->filtered_tgid++;
		}
		return 0;
	}
	c = counters_get();
	if (!c)
		return 0;
	c->events++;
	tid = p->pid;
	w = slot_of(tid, &slot, &sp);
	if (!w) {
		c->filtered_tid++;
		return 0;
	}
	now = bpf_ktime_get_ns();
	cpu = bpf_get_smp_processor_id();
	announce(c, sp, slot, tid, now, cpu);
	/* A wakeup that raced with a sleep that never happened (the thread was
	 * still running, ttwu_runnable()) is not a TASK_WAKEUP. */
	if (w->state != UPCALL_ST_BLOCKED) {
		c->wakeups_not_blocked++;
		return 0;
	}

	word_begin(w, c);
	w->state = UPCALL_ST_PREEMPTED; /* runnable, not on a CPU yet */
	word_end(w);
	c->handled++;

	m = msg_begin(c, sp, slot, tid, UPCALL_MSG_TASK_WAKEUP, now, cpu);
	if (m) {
		m->payload.wakeup.waker_tid = sp->waker_tid;
		m->payload.wakeup.waker_cpu = sp->waker_cpu;
		m->payload.wakeup.target_cpu = task_cpu_of(p);
		msg_end(c, m);
	}
	return 0;
}

/* ---- exit ---------------------------------------------------------------- */

/* Runs in the exiting thread (current == p), once per thread. Marks the
 * slot DEAD and drops the tid mapping, so the thread's final switch-out and a
 * later reuse of its tid by another thread are not attributed to the slot. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(upcall_sched_process_exit, struct task_struct *p)
{
	struct upcall_status_word *w;
	struct upcall_counters *c;
	struct slot_priv *sp;
	struct upcall_msg *m;
	__u32 tid, slot, cpu;
	__u64 now, rt;

	if (p->tgid != (int)target_tgid) {
		c = counters_get();
		if (c) {
			c->events++;
			c->filtered_tgid++;
		}
		return 0;
	}
	c = counters_get();
	if (!c)
		return 0;
	c->events++;
	tid = p->pid;
	w = slot_of(tid, &slot, &sp);
	if (!w) {
		c->filtered_tid++;
		return 0;
	}
	now = bpf_ktime_get_ns();
	cpu = bpf_get_smp_processor_id();
	announce(c, sp, slot, tid, now, cpu);
	rt = runtime_until(w, now);

	word_begin(w, c);
	w->state = UPCALL_ST_DEAD;
	w->cpu = cpu;
	w->last_switch_ns = now;
	w->runtime_ns = rt;
	word_end(w);
	c->handled++;

	m = msg_begin(c, sp, slot, tid, UPCALL_MSG_TASK_DEAD, now, cpu);
	if (m) {
		m->payload.dead.runtime_ns = rt;
		msg_end(c, m);
	}
	bpf_map_delete_elem(&tid_slot, &tid);
	return 0;
}

/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * upcall_abi.h: the one binary interface between the BPF program
 * (activation.bpf.c, compiled with clang -target bpf) and the C++ runtime.
 * It owns three layouts and nothing else: the per-activation status word (an
 * element of a BPF_F_MMAPABLE array that user space reads through mmap), the
 * fixed-width message record carried by the BPF ring buffer (ghOSt
 * vocabulary), and the per-CPU counter block. It does not own any behaviour:
 * who writes which field and in what order is documented here per field, and
 * implemented in activation.bpf.c (kernel side) and bpf_glue.cpp (user side).
 *
 * Rules for changing this file: every layout is pinned by the size/offset
 * assertions at the bottom, which both compilers check (C++ static_assert,
 * BPF/C _Static_assert). Adding a field into reserved space keeps the layout;
 * any other change bumps UPCALL_ABI_VERSION.
 *
 * Include order on the BPF side: "vmlinux.h" first (it supplies __u32/__u64),
 * then this header. User space gets the same types from <linux/types.h>.
 */
#ifndef UPCALL_KERNEL_GLUE_UPCALL_ABI_H
#define UPCALL_KERNEL_GLUE_UPCALL_ABI_H

#if !defined(__bpf__)
#include <linux/types.h>
#endif

/* Bumped on any incompatible change of a layout below. Carried in every
 * upcall_msg.version; the loader drops records whose version differs. */
#define UPCALL_ABI_VERSION 1

/* ------------------------------------------------------------------------ */
/* Status word                                                               */
/* ------------------------------------------------------------------------ */

/* upcall_status_word.state. Written only by BPF (and by the loader while it
 * (re)initialises a slot that no BPF program can reach yet). */
enum upcall_state {
	UPCALL_ST_NONE = 0,      /* slot unused, or registered and not seen yet */
	UPCALL_ST_RUNNING = 1,   /* on a CPU (switched in) */
	UPCALL_ST_PREEMPTED = 2, /* off CPU but runnable: switched out while
				  * runnable, or woken from a block and not yet
				  * switched in */
	UPCALL_ST_BLOCKED = 3,   /* switched out in a sleep state (prev_state) */
	UPCALL_ST_DEAD = 4,      /* the thread passed sched_process_exit */
};

/* upcall_status_word.intent. Written only by user space (the activation that
 * owns the slot); BPF reads it, never writes it. */
enum upcall_intent {
	UPCALL_INTENT_NONE = 0,
	UPCALL_INTENT_PARKED = 1, /* the runtime waits on purpose (idle park,
				   * waiting for I/O completions): a BLOCKED
				   * state is not a block to take over */
};

/* upcall_status_word.watch. Written only by user space (the activation that
 * owns the slot, release store); BPF reads it at the thread's switch-out. */
enum upcall_watch {
	UPCALL_WATCH_NONE = 0,
	UPCALL_WATCH_ALERT = 1, /* nobody watches this thread's core (a standby
				 * took it over and has not appointed the next
				 * standby yet): a switch-out that BLOCKS (intent
				 * NONE) or is PREEMPTED sends an upcall_alert on
				 * the "alerts" ring with a forced wakeup */
	UPCALL_WATCH_BLOCKS = 2, /* the core's standby sleeps (lazy standby): a
				  * switch-out that BLOCKS (intent NONE) sends an
				  * alert; preemptions do not */
};

/* Values of the kernel's task->__state that matter to readers of prev_state
 * (include/linux/sched.h; stable for a decade). prev_state is stored raw, so
 * flag bits such as TASK_NOLOAD (0x400) may be set on top of these. */
#define UPCALL_KSTATE_RUNNING 0x0000u
#define UPCALL_KSTATE_INTERRUPTIBLE 0x0001u
#define UPCALL_KSTATE_UNINTERRUPTIBLE 0x0002u
#define UPCALL_KSTATE_DEAD 0x0080u
#define UPCALL_KSTATE_WAKING 0x0200u

/*
 * One per activation slot, one cache line each, in the "status_words" array
 * map. Ownership: every field except `intent` and `watch` is written by BPF only (one
 * writer at a time, see "Why BPF writers of a slot never race" in
 * activation.bpf.c); `intent` and `watch` are written by user space only.
 *
 * Seqlock protocol (the ghOSt barrier, made multi-field safe):
 *   writer: seq += 1 (now odd; fully ordered atomic), write fields,
 *           seq += 1 (now even; fully ordered atomic).
 *   reader: s1 = load-acquire(seq) (pairs with the writer's closing
 *           increment); if s1 is odd, retry;
 *           copy the fields with acquire loads (or relaxed loads and then
 *           an acquire fence), so that the re-check cannot move above them
 *           and a field written after a writer's opening increment implies
 *           the re-check sees that increment;
 *           s2 = load(seq); if s1 != s2, retry.
 * So every state change (and every registration, which the loader writes
 * the same way) advances seq by exactly 2. `intent` and `watch` are outside
 * the protocol: the only writer of each is user space (the slot's owner, with a release
 * store); read it with one acquire load.
 * upcall::kglue::read_status_word() implements the reader.
 */
struct upcall_status_word {
	__u32 state;          /* BPF: enum upcall_state */
	__u32 seq;            /* BPF: odd while a write is in progress */
	__u32 prev_state;     /* BPF: task->__state at the last switch-out */
	__u32 cpu;            /* BPF: CPU of the last switch in or out */
	__u64 last_switch_ns; /* BPF: bpf_ktime_get_ns() (CLOCK_MONOTONIC) of
			       * the last switch in or out */
	__u64 runtime_ns;     /* BPF: cumulative on-CPU time, updated at each
			       * switch-out (add now - last_switch_ns while
			       * state == RUNNING for the live value) */
	__u32 tid;            /* loader at registration; BPF checks it before
			       * writing, so a stale mapping cannot write a
			       * reused slot */
	__u32 intent;         /* user space only: enum upcall_intent */
	__u32 nr_blocks;      /* BPF: switch-outs that were BLOCKED */
	__u32 nr_preempts;    /* BPF: switch-outs that were PREEMPTED */
	__u32 watch;          /* user space only: enum upcall_watch */
	__u32 reserved[3];    /* zero */
} __attribute__((aligned(64)));

/* ------------------------------------------------------------------------ */
/* Message stream (BPF ring buffer)                                          */
/* ------------------------------------------------------------------------ */

/* upcall_msg.type: ghOSt's vocabulary. The kernel side emits all but
 * TASK_YIELD; a sched_switch cannot tell sched_yield() from a preemption on
 * return to user mode, so TASK_YIELD is left to user-space sources (fibers). */
enum upcall_msg_type {
	UPCALL_MSG_TASK_NEW = 1,     /* first event after registration */
	UPCALL_MSG_TASK_BLOCKED = 2, /* switched out in a sleep state */
	UPCALL_MSG_TASK_WAKEUP = 3,  /* a BLOCKED thread became runnable */
	UPCALL_MSG_TASK_PREEMPT = 4, /* switched out while runnable */
	UPCALL_MSG_TASK_ON_CPU = 5,  /* switched in */
	UPCALL_MSG_TASK_DEAD = 6,    /* passed sched_process_exit */
	UPCALL_MSG_TASK_YIELD = 7,   /* reserved for user-space sources */
};

struct upcall_msg_blocked {
	__u32 prev_state; /* raw task->__state, e.g. UPCALL_KSTATE_* */
	__u32 intent;     /* status word intent at the block */
	__u64 runtime_ns; /* cumulative on-CPU time after this switch-out */
};

struct upcall_msg_preempt {
	__u32 prev_state;     /* raw task->__state (non-zero if preempted in
			       * the middle of going to sleep) */
	__u32 kernel_preempt; /* sched_switch's preempt flag: 1 = involuntary
			       * in-kernel preemption, 0 = schedule() while
			       * runnable (tick on return to user, yield) */
	__u64 runtime_ns;
};

struct upcall_msg_wakeup {
	__u32 waker_tid;  /* current thread at sched_waking */
	__u32 waker_cpu;  /* CPU of sched_waking */
	__u32 target_cpu; /* CPU the thread was queued on (task_cpu) */
	__u32 reserved;
};

struct upcall_msg_on_cpu {
	__u32 prev_tid;   /* thread switched out by this switch (0 = idle) */
	__u32 reserved;
	__u64 off_cpu_ns; /* time since the previous switch of this thread */
};

struct upcall_msg_dead {
	__u32 reserved[2];
	__u64 runtime_ns;
};

/*
 * One ring-buffer record (48 bytes + the ring's 8-byte header). Written once
 * by BPF into reserved ring space and submitted; user space only reads.
 * seq is per source: for kernel messages, per slot. It advances by one per
 * message the BPF side tried to send, so a gap means the ring was full
 * (also counted in upcall_counters.msg_drops).
 */
struct upcall_msg {
	__u16 type;    /* enum upcall_msg_type */
	__u16 version; /* UPCALL_ABI_VERSION */
	__u32 slot;    /* activation slot of the thread */
	__u32 tid;     /* the thread the message is about */
	__u32 seq;     /* per-slot message sequence, starts at 1 */
	__u64 ts_ns;   /* bpf_ktime_get_ns() at the event */
	__u32 cpu;     /* CPU the event was observed on */
	__u32 flags;   /* zero; reserved */
	union {
		struct upcall_msg_blocked blocked;
		struct upcall_msg_preempt preempt;
		struct upcall_msg_wakeup wakeup;
		struct upcall_msg_on_cpu on_cpu;
		struct upcall_msg_dead dead;
		__u64 raw[2];
	} payload;
};

/*
 * One record of the "alerts" ring (a second ring buffer whose records always
 * wake their consumer). Sent at the switch-out of a thread whose status word
 * asks for it (enum upcall_watch): in the window after a takeover, or while a
 * lazy standby sleeps; only blocks and (for WATCH_ALERT) preemptions of such
 * threads pay the irq_work of the wakeup. The consumer (the runtime's alert
 * thread) appoints or wakes a standby for the thread's core when it blocked,
 * and raises the thread's policy when it was preempted in its window.
 */
struct upcall_alert {
	__u16 version;    /* UPCALL_ABI_VERSION */
	__u16 state;      /* UPCALL_ST_BLOCKED or UPCALL_ST_PREEMPTED */
	__u32 slot;
	__u32 tid;
	__u32 prev_state; /* raw task->__state at the switch-out */
	__u64 ts_ns;      /* bpf_ktime_get_ns() at the switch-out */
};

/* When a submitted record wakes a consumer sleeping in epoll on the ring.
 * Set by the loader in the BPF program's .rodata before load (one value per
 * loaded program). A wakeup is an irq_work (a self-IPI on x86) raised inside
 * the traced scheduler event: measured on a 2-vCPU VM it moved the p50 of
 * "standby sees BLOCKED" from ~1.1-1.4 us to ~5.5 us, hence the default NONE. */
enum upcall_ring_wakeup {
	UPCALL_RING_WAKE_NONE = 0,     /* never: consumers poll with a timeout */
	UPCALL_RING_WAKE_BLOCKING = 1, /* NEW, BLOCKED, WAKEUP, DEAD wake it;
					* ON_CPU and PREEMPT do not */
	UPCALL_RING_WAKE_ALL = 2,      /* kernel default: any record wakes a
					* consumer that has caught up */
};

/* ------------------------------------------------------------------------ */
/* Counters (one BPF_MAP_TYPE_PERCPU_ARRAY element; summed by the loader)    */
/* ------------------------------------------------------------------------ */

/* Written by BPF with plain increments: each CPU has its own copy and the
 * programs never interrupt one another on a CPU (they run with IRQs off or
 * under an IRQ-safe lock). Read by the loader through a map lookup. */
struct upcall_counters {
	__u64 events;              /* program invocations, all programs */
	__u64 filtered_tgid;       /* dropped by the first check (other process) */
	__u64 filtered_tid;        /* our process, thread not registered */
	__u64 handled;             /* status-word updates */
	__u64 msgs;                /* records submitted to the ring buffer */
	__u64 msg_drops;           /* ring buffer full: record lost */
	__u64 seq_collisions;      /* writer found seq odd: must stay 0 */
	__u64 wakeups_not_blocked; /* sched_wakeup of a slot not BLOCKED */
};

/* ------------------------------------------------------------------------ */
/* Layout checks, identical for both compilers                               */
/* ------------------------------------------------------------------------ */

#ifdef __cplusplus
#define UPCALL_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define UPCALL_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif
#define UPCALL_ABI_OFF(type, field) __builtin_offsetof(struct type, field)

UPCALL_ABI_ASSERT(sizeof(struct upcall_status_word) == 64, "status word is one line");
UPCALL_ABI_ASSERT(__alignof__(struct upcall_status_word) == 64, "status word alignment");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, state) == 0, "state");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, seq) == 4, "seq");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, prev_state) == 8, "prev_state");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, cpu) == 12, "cpu");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, last_switch_ns) == 16, "last_switch_ns");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, runtime_ns) == 24, "runtime_ns");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, tid) == 32, "tid");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, intent) == 36, "intent");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, nr_blocks) == 40, "nr_blocks");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, nr_preempts) == 44, "nr_preempts");

UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_status_word, watch) == 48, "watch");

UPCALL_ABI_ASSERT(sizeof(struct upcall_alert) == 24, "alert record is 24 bytes");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_alert, ts_ns) == 16, "alert ts_ns");

UPCALL_ABI_ASSERT(sizeof(struct upcall_msg) == 48, "message record is 48 bytes");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, type) == 0, "type");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, version) == 2, "version");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, slot) == 4, "slot");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, tid) == 8, "tid");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, seq) == 12, "seq");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, ts_ns) == 16, "ts_ns");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, cpu) == 24, "cpu");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, flags) == 28, "flags");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, payload) == 32, "payload");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, payload.wakeup.target_cpu) == 40, "target_cpu");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_msg, payload.blocked.runtime_ns) == 40, "blocked runtime");

UPCALL_ABI_ASSERT(sizeof(struct upcall_counters) == 64, "counters are one line");
UPCALL_ABI_ASSERT(UPCALL_ABI_OFF(upcall_counters, wakeups_not_blocked) == 56, "last counter");

#undef UPCALL_ABI_OFF
#undef UPCALL_ABI_ASSERT

#endif /* UPCALL_KERNEL_GLUE_UPCALL_ABI_H */

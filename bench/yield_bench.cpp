// bench/yield_bench.cpp: the cost of one fiber switch. Two fibers on ONE core yield to each
// other; every iteration of the measuring fiber is two switches (to the partner and back), so
// the `ns_per_switch` counter is wall time / (2 * iterations). Peers in the same binary:
// Boost.Fiber (two fibers on one thread, default round_robin scheduler) and a raw
// boost::context jump_fcontext ping-pong (the floor: no scheduler at all). Also the same upcall
// yield through a trivial custom Policy (BM_Policy_Yield_Custom), which shows what the policy
// interface costs next to the built-in fast path. Owns no runtime code.
#include <benchmark/benchmark.h>

#include <atomic>
#include <boost/context/detail/fcontext.hpp>
#include <boost/fiber/all.hpp>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "bench_common.hpp"
#include "upcall/upcall.hpp"

namespace {

using upcall::bench::mono_ns;
using upcall::bench::thread_cpu_ns;

// ns_per_switch: wall time; cpu_ns_per_switch: CPU time of the one kernel thread that ran the
// loop (every benchmark here runs both contexts on one thread), which leaves out the time the
// thread waited for the CPU behind other processes.
void report_switches(benchmark::State& state, std::int64_t elapsed_ns, std::int64_t cpu_ns) {
  const double switches = 2.0 * static_cast<double>(state.iterations());
  state.SetItemsProcessed(static_cast<std::int64_t>(switches));
  state.counters["ns_per_switch"] = static_cast<double>(elapsed_ns) / switches;
  state.counters["cpu_ns_per_switch"] = static_cast<double>(cpu_ns) / switches;
}

// Runs the two-fiber yield ping-pong on a fresh 1-core runtime.
void yield_pingpong(benchmark::State& state, upcall::Options opts) {
  opts.cores = 1;
  upcall::Runtime rt(std::move(opts));
  rt.block_on([&] {
    std::atomic<bool> stop{false};
    auto partner = upcall::spawn([&] {
      while (!stop.load(std::memory_order_relaxed)) upcall::this_task::yield();
    });
    upcall::this_task::yield();  // let the partner start outside the timed loop
    const std::int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
    for (auto _ : state) upcall::this_task::yield();
    const std::int64_t t1 = mono_ns(), c1 = thread_cpu_ns();
    stop.store(true, std::memory_order_relaxed);
    partner.join();
    report_switches(state, t1 - t0, c1 - c0);
  });
  state.SetLabel("activations=" + rt.config().activations);
}

// `activations`: nullptr = the default backend (what a user gets), "off" = no activation
// backend at all, to show what the takeover machinery (runtime regions) costs on the switch path.
void BM_Yield_Upcall(benchmark::State& state, const char* activations) {
  upcall::Options o;
  if (activations) o.activations = activations;
  yield_pingpong(state, std::move(o));
}

void BM_Yield_BoostFiber(benchmark::State& state) {
  // The main context of this thread is a fiber too; the partner is the second one.
  bool stop = false;
  boost::fibers::fiber partner([&] {
    while (!stop) boost::this_fiber::yield();
  });
  boost::this_fiber::yield();
  const std::int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
  for (auto _ : state) boost::this_fiber::yield();
  const std::int64_t t1 = mono_ns(), c1 = thread_cpu_ns();
  stop = true;
  partner.join();
  report_switches(state, t1 - t0, c1 - c0);
}

namespace bctx = boost::context::detail;

// The partner context: jumps back to whoever resumed it, forever.
void raw_partner(bctx::transfer_t t) {
  for (;;) t = bctx::jump_fcontext(t.fctx, nullptr);
}

void BM_Yield_RawContext(benchmark::State& state) {
  constexpr std::size_t kStack = 64 * 1024;
  std::unique_ptr<char[]> stack(new char[kStack]);
  // Safety: the stack is owned by this function and outlives the context; the partner never
  // returns, and it is simply abandoned (suspended) when the stack is freed.
  bctx::fcontext_t partner = bctx::make_fcontext(stack.get() + kStack, kStack, &raw_partner);
  partner = bctx::jump_fcontext(partner, nullptr).fctx;  // warm: enter the loop once
  const std::int64_t c0 = thread_cpu_ns(), t0 = mono_ns();
  for (auto _ : state) partner = bctx::jump_fcontext(partner, nullptr).fctx;
  const std::int64_t t1 = mono_ns(), c1 = thread_cpu_ns();
  report_switches(state, t1 - t0, c1 - c0);
}

// A deliberately plain custom policy: one mutex-protected std::deque per core, FIFO, stealing
// from the front of the other cores' queues.
class DequeFifoPolicy final : public upcall::Policy {
 public:
  const char* name() const override { return "deque-fifo"; }
  void init(int num_cores) override {
    for (int i = 0; i < num_cores; ++i) queues_.push_back(std::make_unique<Queue>());
  }
  void enqueue(int core, upcall::TaskRef task, upcall::TaskEvent) override {
    const std::size_t n = queues_.size();
    const std::size_t i = core >= 0 ? static_cast<std::size_t>(core)
                                    : rr_.fetch_add(1, std::memory_order_relaxed) % n;
    std::lock_guard<std::mutex> lock(queues_[i]->mu);
    queues_[i]->q.push_back(task);
  }
  upcall::TaskRef pick_next(int core) override { return pop(static_cast<std::size_t>(core)); }
  upcall::TaskRef steal(int thief) override {
    for (std::size_t i = 0; i < queues_.size(); ++i)
      if (static_cast<int>(i) != thief)
        if (upcall::TaskRef t = pop(i)) return t;
    return {};
  }

 private:
  struct alignas(64) Queue {
    std::mutex mu;
    std::deque<upcall::TaskRef> q;  // guarded by mu
  };
  upcall::TaskRef pop(std::size_t i) {
    std::lock_guard<std::mutex> lock(queues_[i]->mu);
    if (queues_[i]->q.empty()) return {};
    upcall::TaskRef t = queues_[i]->q.front();
    queues_[i]->q.pop_front();
    return t;
  }
  std::vector<std::unique_ptr<Queue>> queues_;
  std::atomic<std::size_t> rr_{0};
};

void BM_Policy_Yield_Custom(benchmark::State& state) {
  upcall::Options o;
  o.policy = std::make_shared<DequeFifoPolicy>();
  yield_pingpong(state, std::move(o));
}

// The built-in policy again, registered next to the custom one so the two sit side by side.
void BM_Policy_Yield_Builtin(benchmark::State& state) { yield_pingpong(state, upcall::Options{}); }

}  // namespace

BENCHMARK_CAPTURE(BM_Yield_Upcall, activations_default, nullptr)->UseRealTime();
BENCHMARK_CAPTURE(BM_Yield_Upcall, activations_off, "off")->UseRealTime();
BENCHMARK(BM_Yield_BoostFiber)->UseRealTime();
BENCHMARK(BM_Yield_RawContext)->UseRealTime();
BENCHMARK(BM_Policy_Yield_Builtin)->UseRealTime();
BENCHMARK(BM_Policy_Yield_Custom)->UseRealTime();

namespace {

// Reference costs for reading the results above: one uncontended locked compare-and-swap (the
// run queue pop, the LIFO slot, park/unpark and reference counts each pay one), and one read of
// the monotonic clock (what the wake-up benchmarks pay per timestamp).
void BM_Ref_LockedCas(benchmark::State& state) {
  std::atomic<std::uint32_t> word{0};
  std::uint32_t v = 0;
  for (auto _ : state) {
    word.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_relaxed);
    benchmark::DoNotOptimize(v);
  }
}
void BM_Ref_PlainIncrement(benchmark::State& state) {
  std::atomic<std::uint32_t> word{0};
  for (auto _ : state) {
    word.store(word.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    benchmark::ClobberMemory();
  }
}
void BM_Ref_ClockMonotonic(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(mono_ns());
}

}  // namespace

BENCHMARK(BM_Ref_LockedCas)->UseRealTime();
BENCHMARK(BM_Ref_PlainIncrement)->UseRealTime();
BENCHMARK(BM_Ref_ClockMonotonic)->UseRealTime();

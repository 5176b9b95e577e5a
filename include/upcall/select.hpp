// upcall/select.hpp: upcall::select, Go's select statement: wait on several channel operations
// (receives and sends, on channels of any element types) and complete exactly one of them.
// This header owns the case types and the typed front end; the engine (locking, the random
// start, linking one proxy per case, claiming, timeouts) is untyped and lives in
// runtime/sync/channel_select.cpp. The per-channel half of the protocol (how a proxy is
// completed) is in upcall/channel.hpp.
//
//   auto r = upcall::select_for(10ms, upcall::on_recv(a), upcall::on_send(b, 42));
//   switch (r.index()) {
//     case 0: if (auto& v = std::get<0>(r)) use(*v); else /* a closed and drained */; break;
//     case 1: if (std::get<1>(r)) /* 42 was sent */; else /* b is closed */; break;
//     case 2: /* std::get<2>(r) is SelectTimeout: nothing happened in 10 ms */ break;
//   }
//
// The result is a std::variant whose index is the case that fired: std::optional<T> for a
// receive (nullopt: the channel is closed and drained), bool for a send (false: the channel is
// closed). A closed channel is always ready, as in Go. When several cases are ready, the first
// one tried is chosen uniformly at random. A send case owns its value until it fires; pass the
// case as an lvalue to get the value back (SendCase::value()) when another case fired.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#include "upcall/channel.hpp"
#include "upcall/detail/config.hpp"

namespace upcall {

// The extra alternative of select_until / select_for / try_select: no case fired in time
// (try_select: no case was ready).
struct SelectTimeout {};

namespace detail {

// One case as the engine sees it. Built on the select's stack by the typed front end.
struct SelectCase {
  ChannelBase* chan = nullptr;
  bool is_send = false;
  // Pass 1, chan's lock held: complete the operation now if it can (see Attempt).
  Attempt (*poll)(SelectCase&) noexcept = nullptr;
  // No lock held: after poll returned ok / closed (frees `to_free`) or no_memory (grows).
  void (*after)(SelectCase&, Attempt) = nullptr;
  void* arg = nullptr;        // the typed case object
  Waiter* wake = nullptr;     // set by poll: a completed counterpart, notified after unlocking
  void* to_free = nullptr;    // set by poll: a buffer block to free after unlocking
  ChanOp op;                  // the proxy linked into chan's queue while the select waits
};

// Runs a select over cases[0..n). `order` is scratch for n indices. Returns the index of the
// case that fired (its outcome in cases[i]->op.node.tag: kOpDone or kOpClosed), or n when
// nothing fired: !may_wait and nothing was ready, or the deadline passed. May suspend.
UPCALL_API std::size_t select_run(SelectCase* const* cases, std::size_t* order, std::size_t n,
                                  bool may_wait, bool timed,
                                  std::chrono::steady_clock::time_point deadline);

}  // namespace detail

// A receive case: fires with the received value, or nullopt when the channel is closed and
// drained. Must not outlive the channel handle it was made from.
template <class T>
class RecvCase {
 public:
  using result_type = std::optional<T>;
  explicit RecvCase(const Channel<T>& ch) noexcept : st_(ch.s_.get()) {}
  RecvCase(const RecvCase&) = delete;
  RecvCase& operator=(const RecvCase&) = delete;

  void bind(detail::SelectCase& sc) noexcept {
    sc.chan = st_;
    sc.is_send = false;
    sc.poll = &poll;
    sc.after = &after;
    sc.arg = this;
    sc.op.value = &value_;
  }
  result_type take(std::uintptr_t) { return std::move(value_); }

 private:
  static detail::Attempt poll(detail::SelectCase& sc) noexcept {
    auto* self = static_cast<RecvCase*>(sc.arg);
    return self->st_->recv_locked(self->value_, sc.wake, sc.to_free);
  }
  static void after(detail::SelectCase& sc, detail::Attempt) {
    if (sc.to_free) detail::ChannelState<T>::free_block(sc.to_free);
  }
  detail::ChannelState<T>* st_;
  // Filled by poll (under the channel's lock) or by the completer of the proxy (under the lock,
  // before its notify); read by the selecting context after select_run returned.
  std::optional<T> value_;
};

// A send case: fires with true when the value was sent, false when the channel is closed.
template <class T>
class SendCase {
 public:
  using result_type = bool;
  template <class U>
  SendCase(const Channel<T>& ch, U&& v) : st_(ch.s_.get()), value_(std::forward<U>(v)) {}
  SendCase(const SendCase&) = delete;
  SendCase& operator=(const SendCase&) = delete;

  // The value to send; moved from only if this case fired with true.
  T& value() noexcept { return value_; }

  void bind(detail::SelectCase& sc) noexcept {
    sc.chan = st_;
    sc.is_send = true;
    sc.poll = &poll;
    sc.after = &after;
    sc.arg = this;
    sc.op.value = &value_;
  }
  result_type take(std::uintptr_t tag) { return tag == detail::kOpDone; }

 private:
  static detail::Attempt poll(detail::SelectCase& sc) noexcept {
    auto* self = static_cast<SendCase*>(sc.arg);
    return self->st_->send_locked(self->value_, sc.wake);
  }
  static void after(detail::SelectCase& sc, detail::Attempt a) {
    if (a == detail::Attempt::no_memory) static_cast<detail::ChannelState<T>*>(sc.chan)->add_spare();
  }
  detail::ChannelState<T>* st_;
  T value_;  // moved from by poll or by the completer of the proxy, under the channel's lock
};

template <class T>
RecvCase<T> on_recv(const Channel<T>& ch) noexcept {
  return RecvCase<T>(ch);
}
template <class T, class U>
SendCase<T> on_send(const Channel<T>& ch, U&& v) {
  return SendCase<T>(ch, std::forward<U>(v));
}

namespace detail {

template <class V, bool kTimeoutAlt, class Tuple, std::size_t... Is>
V select_front(std::index_sequence<Is...>, Tuple cs, bool may_wait, bool timed,
               std::chrono::steady_clock::time_point deadline) {
  constexpr std::size_t n = sizeof...(Is);
  static_assert(n >= 1, "upcall::select needs at least one case");
  static_assert(n < kSelectTimedOut, "upcall::select: too many cases");
  SelectCase scs[n];
  (std::get<Is>(cs).bind(scs[Is]), ...);
  SelectCase* ptrs[n] = {&scs[Is]...};
  std::size_t order[n];
  const std::size_t fired = select_run(ptrs, order, n, may_wait, timed, deadline);
  V out;
  if constexpr (kTimeoutAlt) {
    if (fired == n) {
      out.template emplace<n>();
      return out;
    }
  }
  ((fired == Is ? (void)out.template emplace<Is>(std::get<Is>(cs).take(scs[Is].op.node.tag))
                : void()),
   ...);
  return out;
}

template <class... Cs>
using SelectVariant = std::variant<typename std::remove_cvref_t<Cs>::result_type...>;
template <class... Cs>
using SelectTimedVariant =
    std::variant<typename std::remove_cvref_t<Cs>::result_type..., SelectTimeout>;

}  // namespace detail

// Waits until one case can complete, completes it, and returns its result. May suspend.
template <class... Cs>
detail::SelectVariant<Cs...> select(Cs&&... cases) {
  return detail::select_front<detail::SelectVariant<Cs...>, false>(
      std::index_sequence_for<Cs...>{}, std::forward_as_tuple(cases...), true, false, {});
}

// As select, but gives up at deadline: the result then holds SelectTimeout (last index).
template <class... Cs>
detail::SelectTimedVariant<Cs...> select_until(std::chrono::steady_clock::time_point deadline,
                                               Cs&&... cases) {
  return detail::select_front<detail::SelectTimedVariant<Cs...>, true>(
      std::index_sequence_for<Cs...>{}, std::forward_as_tuple(cases...), true, true, deadline);
}

template <class Rep, class Period, class... Cs>
detail::SelectTimedVariant<Cs...> select_for(std::chrono::duration<Rep, Period> d,
                                             Cs&&... cases) {
  return select_until(std::chrono::steady_clock::now() +
                          std::chrono::ceil<std::chrono::steady_clock::duration>(d),
                      std::forward<Cs>(cases)...);
}

// Completes one ready case without waiting, or returns SelectTimeout when none is ready.
template <class... Cs>
detail::SelectTimedVariant<Cs...> try_select(Cs&&... cases) {
  return detail::select_front<detail::SelectTimedVariant<Cs...>, true>(
      std::index_sequence_for<Cs...>{}, std::forward_as_tuple(cases...), false, false, {});
}

}  // namespace upcall

// upcall/std.hpp: the std-compatible threading layer in one include. Code written against
// <thread>, <mutex>, <shared_mutex>, <condition_variable>, <semaphore>, <latch>, <barrier>,
// <future> and <stop_token> ports by replacing `std::` with `upcall::` for those names (and
// including this header): the same signatures and semantics, on fibers. See each header for
// what differs (mostly: no native_handle, no *_at_thread_exit).
#pragma once

#include "upcall/barrier.hpp"
#include "upcall/call_once.hpp"
#include "upcall/condition_variable.hpp"
#include "upcall/deadline.hpp"
#include "upcall/default_runtime.hpp"
#include "upcall/fiber_local.hpp"
#include "upcall/future.hpp"
#include "upcall/latch.hpp"
#include "upcall/mutex.hpp"
#include "upcall/semaphore.hpp"
#include "upcall/shared_mutex.hpp"
#include "upcall/stop_token.hpp"
#include "upcall/thread.hpp"

// runtime/core/default_runtime.hpp: the library-internal side of upcall::default_runtime()
// (upcall/default_runtime.hpp): asking whether it runs without creating it.
#pragma once

namespace upcall::rt {

class RuntimeImpl;

// The default runtime's internals while it runs; nullptr before its first use and after its
// shutdown began. Never creates it.
RuntimeImpl* default_runtime_impl_if_running() noexcept;

}  // namespace upcall::rt

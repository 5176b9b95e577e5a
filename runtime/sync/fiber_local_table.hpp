// runtime/sync/fiber_local_table.hpp: the library-internal entry points of the fiber_local
// side table (runtime/sync/fiber_local.cpp), for the default runtime's shutdown.
#pragma once

namespace upcall::detail {

// Destroys the values still recorded for fibers of runtime `rt` (a RuntimeImpl*, used only as
// a key). Called after that runtime was destroyed, so none of its fibers runs any more.
void fiber_locals_release_runtime(const void* rt) noexcept;

}  // namespace upcall::detail

// runtime/core/signals.hpp: the stack-overflow report and one-time announcements. A fault on a
// fiber stack's guard page is caught on the activation's alternate signal stack and turned into
// one clear fatal line naming the fiber; every other fault goes to the previous handler.
#pragma once

#include <string>

namespace upcall::rt {

class StackPool;

void register_stack_pool(StackPool* pool);
void unregister_stack_pool(StackPool* pool);

// Prints `message` to stderr the first time `key` is announced in this process.
void announce_once(const std::string& key, const std::string& message);

}  // namespace upcall::rt

// A std threading program ported by changing the namespace, built by a project outside the
// upcall tree against the installed package. The same source is compiled twice: PORT_NS=std
// (the original) and PORT_NS=upcall (the port); check_install.sh runs both and compares what
// they print. The program is the scenario set of the std layer's own tests (scenarios.inc).
#include <atomic>
#include <barrier>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <latch>
#include <map>
#include <mutex>
#include <semaphore>
#include <shared_mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include <upcall/std.hpp>

namespace ported {
namespace ns = ::PORT_NS;
#include "scenarios.inc"
}  // namespace ported

int main() {
  const std::pair<const char*, std::string (*)()> scenarios[] = {
      {"producer_consumer", &ported::producer_consumer},
      {"jthread_stop", &ported::jthread_stop},
      {"futures", &ported::futures},
      {"call_once_retry", &ported::call_once_retry},
      {"phases", &ported::phases},
      {"semaphores", &ported::semaphores},
      {"readers_writers", &ported::readers_writers},
      {"mutex_kinds", &ported::mutex_kinds},
  };
  for (const auto& [name, run] : scenarios) std::printf("%s: %s\n", name, run().c_str());
  return 0;
}

// Uses the installed upcall: spawn 100 fibers from a fiber and sum their results.
#include <upcall/upcall.hpp>

#include <cstdio>
#include <vector>

int main() {
  upcall::Runtime rt;
  const int sum = rt.block_on([] {
    std::vector<upcall::JoinHandle<int>> hs;
    for (int i = 1; i <= 100; ++i) hs.push_back(upcall::spawn([i] { return i; }));
    int s = 0;
    for (auto& h : hs) s += h.join();
    return s;
  });
  std::printf("consumer: sum=%d\n", sum);
  return sum == 5050 ? 0 : 1;
}

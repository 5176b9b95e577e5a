// Child processes for the load generator's integration tests: run a program to completion with
// its output captured and a deadline, or keep a server running until the test ends (killed by
// PID in the destructor). Plain POSIX (fork/exec, poll, waitpid); no shell.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace loadgen::test {

struct Child {
  pid_t pid = -1;
  int out = -1;  // read ends of the child's stdout and stderr
  int err = -1;
};

// RLIMIT_NOFILE for a child; 0 keeps the inherited value.
struct FdLimit {
  rlim_t soft = 0, hard = 0;
};

// Starts args[0] with args, stdout and stderr on pipes, and the file descriptor limit `fds`
// (set between fork and exec, so the test process keeps its own). Between fork and exec only
// async-signal-safe calls: the test may have threads.
inline Child spawn_child(const std::vector<std::string>& args, FdLimit fds = {}) {
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (fds.hard) rl.rlim_max = fds.hard;
  if (fds.soft) rl.rlim_cur = fds.soft;
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  Child c;
  c.pid = fork();
  if (c.pid < 0) throw std::runtime_error("fork");
  if (c.pid == 0) {
    dup2(out[1], 1);  // dup2 clears O_CLOEXEC on the copy
    dup2(err[1], 2);
    if (fds.soft || fds.hard) setrlimit(RLIMIT_NOFILE, &rl);
    execve(argv[0], argv.data(), environ);
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  c.out = out[0];
  c.err = err[0];
  return c;
}

struct Finished {
  int status = -1;        // waitpid status
  bool timed_out = false;  // killed at the deadline
  std::string out, err;
  bool exited_with(int code) const { return WIFEXITED(status) && WEXITSTATUS(status) == code; }
};

// Runs args[0] with args, collects its output, kills it (SIGKILL) at the deadline; `fd_limit` as
// for spawn_child.
inline Finished run_to_end(const std::vector<std::string>& args, std::chrono::seconds limit,
                           FdLimit fd_limit = {}) {
  Child c = spawn_child(args, fd_limit);
  Finished f;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  pollfd fds[2] = {{c.out, POLLIN, 0}, {c.err, POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) {
      kill(c.pid, SIGKILL);
      f.timed_out = true;
      break;
    }
    if (poll(fds, 2, static_cast<int>(left)) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? f.out : f.err).append(buf, static_cast<size_t>(n));
      } else {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& p : fds)
    if (p.fd >= 0) close(p.fd);
  waitpid(c.pid, &f.status, 0);
  return f;
}

// A server that prints "... listening on HOST:PORT ..." on its first stdout line; killed by
// PID (SIGTERM, then reaped) when the object goes away.
class Server {
 public:
  explicit Server(const std::vector<std::string>& args) : child_(spawn_child(args)) {
    std::string line;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (line.find('\n') == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{child_.out, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char ch;
      if (read(child_.out, &ch, 1) != 1) break;
      line += ch;
    }
    first_line_ = line;
    auto colon = line.rfind(':');
    if (line.find("listening on") != std::string::npos && colon != std::string::npos)
      port_ = std::atoi(line.c_str() + colon + 1);
  }
  ~Server() { stop(); }
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const { return port_; }  // 0 if the server did not come up
  const std::string& first_line() const { return first_line_; }
  void stop() {
    if (child_.pid < 0) return;
    kill(child_.pid, SIGTERM);
    int st;
    waitpid(child_.pid, &st, 0);
    close(child_.out);
    close(child_.err);
    child_.pid = -1;
  }

 private:
  Child child_;
  int port_ = 0;
  std::string first_line_;
};

}  // namespace loadgen::test

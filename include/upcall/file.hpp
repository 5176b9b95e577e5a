// upcall/file.hpp: a file descriptor owner with fiber-blocking reads, writes and syncs (through
// upcall/io.hpp: io_uring requests on a fiber, the plain syscalls on a plain thread). Errors as
// in net.hpp: a std::error_code form and a throwing form (std::system_error with the errno).
#pragma once

#include <fcntl.h>
#include <sys/types.h>

#include <cstddef>
#include <string>
#include <system_error>

#include "upcall/detail/config.hpp"
#include "upcall/io.hpp"

namespace upcall {

class UPCALL_API File {
 public:
  File() noexcept = default;
  explicit File(int fd) noexcept : fd_(fd) {}  // takes ownership
  File(File&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  File& operator=(File&& o) noexcept;
  ~File();

  // openat(AT_FDCWD, path, flags | O_CLOEXEC, mode).
  static File open(const std::string& path, int flags, mode_t mode, std::error_code& ec);
  static File open(const std::string& path, int flags = O_RDONLY, mode_t mode = 0644);

  // At the file position (advances it).
  std::size_t read(void* buf, std::size_t n, std::error_code& ec, const io::Limits& lim = {});
  std::size_t write(const void* buf, std::size_t n, std::error_code& ec, const io::Limits& lim = {});
  // At `offset` (the file position is unchanged). read_at returns fewer bytes only at EOF;
  // write_at writes all n bytes (looping over short writes) unless an error stops it.
  std::size_t read_at(void* buf, std::size_t n, off_t offset, std::error_code& ec,
                      const io::Limits& lim = {});
  std::size_t read_at(void* buf, std::size_t n, off_t offset);
  std::size_t write_at(const void* buf, std::size_t n, off_t offset, std::error_code& ec,
                       const io::Limits& lim = {});
  void write_at(const void* buf, std::size_t n, off_t offset);
  // fsync (datasync: fdatasync).
  std::error_code sync(bool datasync = false) noexcept;
  // st_size, or -1 with ec set.
  off_t size(std::error_code& ec) const noexcept;
  std::error_code close() noexcept;
  int fd() const noexcept { return fd_; }
  int release() noexcept {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  explicit operator bool() const noexcept { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

}  // namespace upcall

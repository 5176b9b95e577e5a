// runtime/io/file.cpp: upcall/file.hpp, a descriptor owner over the calls of upcall/io.hpp.
#include "upcall/file.hpp"

#include <sys/stat.h>

#include <cerrno>

namespace upcall {

File& File::operator=(File&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

File::~File() { close(); }

File File::open(const std::string& path, int flags, mode_t mode, std::error_code& ec) {
  const io::Result r = io::openat(AT_FDCWD, path.c_str(), flags, mode);
  ec = r.error;
  return r.error ? File() : File(r.fd());
}

File File::open(const std::string& path, int flags, mode_t mode) {
  std::error_code ec;
  File f = open(path, flags, mode, ec);
  if (ec) throw std::system_error(ec, "upcall::File::open(" + path + ")");
  return f;
}

std::size_t File::read(void* buf, std::size_t n, std::error_code& ec, const io::Limits& lim) {
  const io::Result r = io::read(fd_, buf, n, lim);
  ec = r.error;
  return r.value;
}

std::size_t File::write(const void* buf, std::size_t n, std::error_code& ec, const io::Limits& lim) {
  const io::Result r = io::write(fd_, buf, n, lim);
  ec = r.error;
  return r.value;
}

std::size_t File::read_at(void* buf, std::size_t n, off_t offset, std::error_code& ec,
                          const io::Limits& lim) {
  ec.clear();
  std::size_t got = 0;
  auto* p = static_cast<char*>(buf);
  while (got < n) {
    const io::Result r = io::pread(fd_, p + got, n - got, offset + static_cast<off_t>(got), lim);
    if (r.error) {
      ec = r.error;
      break;
    }
    if (r.value == 0) break;  // end of file
    got += r.value;
  }
  return got;
}

std::size_t File::read_at(void* buf, std::size_t n, off_t offset) {
  std::error_code ec;
  const std::size_t got = read_at(buf, n, offset, ec);
  if (ec) throw std::system_error(ec, "upcall::File::read_at");
  return got;
}

std::size_t File::write_at(const void* buf, std::size_t n, off_t offset, std::error_code& ec,
                           const io::Limits& lim) {
  ec.clear();
  std::size_t put = 0;
  const auto* p = static_cast<const char*>(buf);
  while (put < n) {
    const io::Result r = io::pwrite(fd_, p + put, n - put, offset + static_cast<off_t>(put), lim);
    if (r.error) {
      ec = r.error;
      break;
    }
    put += r.value;
  }
  return put;
}

void File::write_at(const void* buf, std::size_t n, off_t offset) {
  std::error_code ec;
  write_at(buf, n, offset, ec);
  if (ec) throw std::system_error(ec, "upcall::File::write_at");
}

std::error_code File::sync(bool datasync) noexcept { return io::fsync(fd_, datasync).error; }

off_t File::size(std::error_code& ec) const noexcept {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    ec = std::error_code(errno, std::system_category());
    return -1;
  }
  ec.clear();
  return st.st_size;
}

std::error_code File::close() noexcept {
  if (fd_ < 0) return {};
  const io::Result r = io::close(fd_);
  fd_ = -1;
  return r.error;
}

}  // namespace upcall

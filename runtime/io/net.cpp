// runtime/io/net.cpp: upcall/net.hpp, the socket types, on top of the calls of upcall/io.hpp.
// It owns descriptor lifetimes and address formatting; it waits for nothing itself.
#include "upcall/net.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "upcall/blocking.hpp"

namespace upcall::net {

namespace {

std::error_code last_error() { return std::error_code(errno, std::system_category()); }

void throw_if(const std::error_code& ec, const char* what) {
  if (ec) throw std::system_error(ec, what);
}

int new_socket(int family, int type, std::error_code& ec) {
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) ec = last_error();
  return fd;
}

std::error_code close_fd(int& fd) noexcept {
  if (fd < 0) return {};
  const io::Result r = io::close(fd);
  fd = -1;
  return r.error;
}

// Move-assignment of a socket holder: closes what `fd` held, takes `from`'s descriptor.
void move_fd(int& fd, int& from) noexcept {
  if (&fd == &from) return;
  close_fd(fd);
  fd = from;
  from = -1;
}

// getsockname / getpeername into a SocketAddress; throws std::system_error naming `what`.
SocketAddress socket_name(int fd, bool peer, const char* what) {
  SocketAddress a;
  const int rc = peer ? ::getpeername(fd, a.data(), a.size_ptr())
                      : ::getsockname(fd, a.data(), a.size_ptr());
  if (rc != 0) throw std::system_error(last_error(), what);
  return a;
}

}  // namespace

// ------------------------------------------------------------------------- SocketAddress
SocketAddress::SocketAddress() noexcept : ss_{}, len_(sizeof(sockaddr_storage)) {}

SocketAddress::SocketAddress(const sockaddr* sa, socklen_t len) noexcept : ss_{}, len_(len) {
  if (len_ > sizeof ss_) len_ = sizeof ss_;
  std::memcpy(&ss_, sa, len_);
}

SocketAddress SocketAddress::ipv4(std::uint32_t host_order_addr, std::uint16_t port) noexcept {
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  in.sin_addr.s_addr = htonl(host_order_addr);
  return SocketAddress(reinterpret_cast<sockaddr*>(&in), sizeof in);
}

SocketAddress SocketAddress::loopback(std::uint16_t port) noexcept {
  return ipv4(INADDR_LOOPBACK, port);
}

SocketAddress SocketAddress::parse(std::string_view text) {
  const std::string t(text);
  std::string host, port;
  if (!t.empty() && t[0] == '[') {
    const auto close = t.find(']');
    if (close == std::string::npos || close + 1 >= t.size() || t[close + 1] != ':')
      throw std::invalid_argument("upcall::net: bad address '" + t + "' (expected [v6]:port)");
    host = t.substr(1, close - 1);
    port = t.substr(close + 2);
  } else {
    const auto colon = t.rfind(':');
    if (colon == std::string::npos)
      throw std::invalid_argument("upcall::net: bad address '" + t + "' (expected host:port)");
    host = t.substr(0, colon);
    port = t.substr(colon + 1);
  }
  char* end = nullptr;
  const long p = std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end || p < 0 || p > 65535)
    throw std::invalid_argument("upcall::net: bad port in '" + t + "'");
  sockaddr_in in{};
  if (inet_pton(AF_INET, host.c_str(), &in.sin_addr) == 1) {
    in.sin_family = AF_INET;
    in.sin_port = htons(static_cast<std::uint16_t>(p));
    return SocketAddress(reinterpret_cast<sockaddr*>(&in), sizeof in);
  }
  sockaddr_in6 in6{};
  if (inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) == 1) {
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(static_cast<std::uint16_t>(p));
    return SocketAddress(reinterpret_cast<sockaddr*>(&in6), sizeof in6);
  }
  throw std::invalid_argument("upcall::net: '" + host + "' is not a numeric IPv4/IPv6 address "
                              "(use upcall::net::resolve for names)");
}

std::uint16_t SocketAddress::port() const noexcept {
  if (ss_.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&ss_)->sin_port);
  if (ss_.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_port);
  return 0;
}

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (ss_.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss_)->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(port());
  }
  if (ss_.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss_)->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(port());
  }
  return "(unknown family)";
}

std::vector<SocketAddress> resolve(const std::string& host, const std::string& service,
                                   std::error_code& ec) {
  ec.clear();
  std::vector<SocketAddress> out;
  int rc = 0;
  // getaddrinfo may block for a long time (DNS): hand the core to a spare first.
  upcall::blocking([&] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) return;
    for (addrinfo* p = res; p; p = p->ai_next) out.emplace_back(p->ai_addr, p->ai_addrlen);
    ::freeaddrinfo(res);
  });
  if (rc == EAI_SYSTEM)
    ec = last_error();
  else if (rc == EAI_NONAME || rc == EAI_NODATA)
    ec = std::make_error_code(std::errc::host_unreachable);
  else if (rc != 0)
    ec = std::make_error_code(std::errc::address_not_available);
  return out;
}

std::vector<SocketAddress> resolve(const std::string& host, const std::string& service) {
  std::error_code ec;
  auto v = resolve(host, service, ec);
  if (ec) throw std::system_error(ec, "upcall::net::resolve(" + host + ", " + service + ")");
  return v;
}

// ------------------------------------------------------------------------- TcpStream
TcpStream& TcpStream::operator=(TcpStream&& o) noexcept {
  if (this != &o) {
    close_fd(fd_);
    fd_ = o.release();
  }
  return *this;
}

TcpStream::~TcpStream() { close_fd(fd_); }

TcpStream TcpStream::connect(const SocketAddress& to, std::error_code& ec, const io::Limits& lim) {
  ec.clear();
  int fd = new_socket(to.family(), SOCK_STREAM, ec);
  if (fd < 0) return TcpStream();
  const io::Result r = io::connect(fd, to.data(), to.size(), lim);
  if (r.error) {
    ec = r.error;
    close_fd(fd);
    return TcpStream();
  }
  return TcpStream(fd);
}

TcpStream TcpStream::connect(const SocketAddress& to, const io::Limits& lim) {
  std::error_code ec;
  TcpStream s = connect(to, ec, lim);
  if (ec) throw std::system_error(ec, "upcall::net::TcpStream::connect(" + to.to_string() + ")");
  return s;
}

std::size_t TcpStream::read_some(void* buf, std::size_t n, std::error_code& ec,
                                 const io::Limits& lim) {
  const io::Result r = io::recv(fd_, buf, n, 0, lim);
  ec = r.error;
  return r.value;
}

std::size_t TcpStream::read_some(void* buf, std::size_t n, const io::Limits& lim) {
  std::error_code ec;
  const std::size_t got = read_some(buf, n, ec, lim);
  throw_if(ec, "upcall::net::TcpStream::read_some");
  return got;
}

std::size_t TcpStream::read_exact(void* buf, std::size_t n, std::error_code& ec,
                                  const io::Limits& lim) {
  ec.clear();
  std::size_t got = 0;
  auto* p = static_cast<char*>(buf);
  while (got < n) {
    const io::Result r = io::recv(fd_, p + got, n - got, 0, lim);
    if (r.error) {
      ec = r.error;
      break;
    }
    if (r.value == 0) {
      ec = io::eof_error();
      break;
    }
    got += r.value;
  }
  return got;
}

std::size_t TcpStream::write_some(const void* buf, std::size_t n, std::error_code& ec,
                                  const io::Limits& lim) {
  const io::Result r = io::send(fd_, buf, n, 0, lim);
  ec = r.error;
  return r.value;
}

std::size_t TcpStream::write_all(const void* buf, std::size_t n, std::error_code& ec,
                                 const io::Limits& lim) {
  ec.clear();
  std::size_t sent = 0;
  const auto* p = static_cast<const char*>(buf);
  while (sent < n) {
    const io::Result r = io::send(fd_, p + sent, n - sent, 0, lim);
    if (r.error) {
      ec = r.error;
      break;
    }
    sent += r.value;
  }
  return sent;
}

void TcpStream::write_all(const void* buf, std::size_t n, const io::Limits& lim) {
  std::error_code ec;
  write_all(buf, n, ec, lim);
  throw_if(ec, "upcall::net::TcpStream::write_all");
}

std::error_code TcpStream::shutdown(int how) noexcept { return io::shutdown(fd_, how).error; }

std::error_code TcpStream::set_nodelay(bool on) noexcept {
  const int v = on ? 1 : 0;
  if (::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &v, sizeof v) != 0) return last_error();
  return {};
}

SocketAddress TcpStream::peer_address() const {
  return socket_name(fd_, true, "upcall::net::TcpStream::peer_address");
}

SocketAddress TcpStream::local_address() const {
  return socket_name(fd_, false, "upcall::net::TcpStream::local_address");
}

std::error_code TcpStream::close() noexcept { return close_fd(fd_); }

// ------------------------------------------------------------------------- TcpListener
TcpListener& TcpListener::operator=(TcpListener&& o) noexcept {
  move_fd(fd_, o.fd_);
  return *this;
}

TcpListener::~TcpListener() { close_fd(fd_); }

TcpListener TcpListener::bind(const SocketAddress& at, std::error_code& ec, int backlog) {
  ec.clear();
  TcpListener l;
  l.fd_ = new_socket(at.family(), SOCK_STREAM, ec);
  if (l.fd_ < 0) return l;
  const int one = 1;
  ::setsockopt(l.fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(l.fd_, at.data(), at.size()) != 0 || ::listen(l.fd_, backlog) != 0) {
    ec = last_error();
    close_fd(l.fd_);
  }
  return l;
}

TcpListener TcpListener::bind(const SocketAddress& at, int backlog) {
  std::error_code ec;
  TcpListener l = bind(at, ec, backlog);
  if (ec) throw std::system_error(ec, "upcall::net::TcpListener::bind(" + at.to_string() + ")");
  return l;
}

TcpStream TcpListener::accept(std::error_code& ec, const io::Limits& lim, SocketAddress* peer) {
  SocketAddress tmp;
  SocketAddress* a = peer ? peer : &tmp;
  *a->size_ptr() = sizeof(sockaddr_storage);
  const io::Result r = io::accept(fd_, a->data(), a->size_ptr(), SOCK_NONBLOCK, lim);
  ec = r.error;
  if (r.error) return TcpStream();
  return TcpStream(r.fd());
}

TcpStream TcpListener::accept(const io::Limits& lim, SocketAddress* peer) {
  std::error_code ec;
  TcpStream s = accept(ec, lim, peer);
  throw_if(ec, "upcall::net::TcpListener::accept");
  return s;
}

SocketAddress TcpListener::local_address() const {
  return socket_name(fd_, false, "upcall::net::TcpListener::local_address");
}

std::error_code TcpListener::close() noexcept { return close_fd(fd_); }

// ------------------------------------------------------------------------- UdpSocket
UdpSocket& UdpSocket::operator=(UdpSocket&& o) noexcept {
  move_fd(fd_, o.fd_);
  return *this;
}

UdpSocket::~UdpSocket() { close_fd(fd_); }

UdpSocket UdpSocket::bind(const SocketAddress& at, std::error_code& ec) {
  ec.clear();
  UdpSocket u;
  u.fd_ = new_socket(at.family(), SOCK_DGRAM, ec);
  if (u.fd_ < 0) return u;
  if (::bind(u.fd_, at.data(), at.size()) != 0) {
    ec = last_error();
    close_fd(u.fd_);
  }
  return u;
}

UdpSocket UdpSocket::bind(const SocketAddress& at) {
  std::error_code ec;
  UdpSocket u = bind(at, ec);
  if (ec) throw std::system_error(ec, "upcall::net::UdpSocket::bind(" + at.to_string() + ")");
  return u;
}

// Datagrams go through readiness (io::poll) and a non-blocking syscall on every backend.
std::size_t UdpSocket::send_to(const void* buf, std::size_t n, const SocketAddress& to,
                               std::error_code& ec, const io::Limits& lim) {
  for (;;) {
    const ssize_t rc = ::sendto(fd_, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL, to.data(), to.size());
    if (rc >= 0) {
      ec.clear();
      return static_cast<std::size_t>(rc);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      ec = last_error();
      return 0;
    }
    const io::Result r = io::poll(fd_, POLLOUT, lim);
    if (r.error) {
      ec = r.error;
      return 0;
    }
  }
}

std::size_t UdpSocket::recv_from(void* buf, std::size_t n, SocketAddress* from, std::error_code& ec,
                                 const io::Limits& lim) {
  for (;;) {
    SocketAddress tmp;
    SocketAddress* a = from ? from : &tmp;
    *a->size_ptr() = sizeof(sockaddr_storage);
    const ssize_t rc = ::recvfrom(fd_, buf, n, MSG_DONTWAIT, a->data(), a->size_ptr());
    if (rc >= 0) {
      ec.clear();
      return static_cast<std::size_t>(rc);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) {
      ec = last_error();
      return 0;
    }
    const io::Result r = io::poll(fd_, POLLIN, lim);
    if (r.error) {
      ec = r.error;
      return 0;
    }
  }
}

SocketAddress UdpSocket::local_address() const {
  return socket_name(fd_, false, "upcall::net::UdpSocket::local_address");
}

std::error_code UdpSocket::close() noexcept { return close_fd(fd_); }

}  // namespace upcall::net

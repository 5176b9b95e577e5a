// upcall/net.hpp: TCP and UDP sockets and address resolution on top of upcall/io.hpp. Calls
// suspend a calling fiber (never its kernel thread) and block a calling plain thread. Every
// call has two forms: one that reports errors in a std::error_code (and returns what it moved),
// and one that throws std::system_error carrying the errno. Sockets are created non-blocking
// and close-on-exec; sends never raise SIGPIPE (MSG_NOSIGNAL).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "upcall/detail/config.hpp"
#include "upcall/io.hpp"

namespace upcall::net {

// An IPv4 or IPv6 socket address.
class UPCALL_API SocketAddress {
 public:
  SocketAddress() noexcept;
  SocketAddress(const sockaddr* sa, socklen_t len) noexcept;
  // "127.0.0.1:8080", "[::1]:8080" (numeric only; see resolve() for names). Throws
  // std::invalid_argument naming the text.
  static SocketAddress parse(std::string_view text);
  static SocketAddress ipv4(std::uint32_t host_order_addr, std::uint16_t port) noexcept;
  static SocketAddress loopback(std::uint16_t port) noexcept;  // 127.0.0.1:port
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&ss_); }
  sockaddr* data() noexcept { return reinterpret_cast<sockaddr*>(&ss_); }
  socklen_t size() const noexcept { return len_; }
  socklen_t* size_ptr() noexcept { return &len_; }
  int family() const noexcept { return ss_.ss_family; }
  std::uint16_t port() const noexcept;
  std::string to_string() const;

 private:
  sockaddr_storage ss_;
  socklen_t len_;
};

// Resolves host and service (getaddrinfo) for TCP. Runs the resolver on a spare kernel thread
// (upcall::blocking) when called from a fiber. Errors: the getaddrinfo message in ec's text
// (std::errc::host_unreachable for "no such host").
UPCALL_API std::vector<SocketAddress> resolve(const std::string& host, const std::string& service,
                                              std::error_code& ec);
UPCALL_API std::vector<SocketAddress> resolve(const std::string& host, const std::string& service);

class UPCALL_API TcpStream {
 public:
  TcpStream() noexcept = default;
  explicit TcpStream(int fd) noexcept : fd_(fd) {}  // takes ownership
  TcpStream(TcpStream&& o) noexcept : fd_(o.release()) {}
  TcpStream& operator=(TcpStream&& o) noexcept;
  ~TcpStream();

  static TcpStream connect(const SocketAddress& to, std::error_code& ec, const io::Limits& lim = {});
  static TcpStream connect(const SocketAddress& to, const io::Limits& lim = {});

  // Up to n bytes; 0 at end of stream (the peer shut down its side).
  std::size_t read_some(void* buf, std::size_t n, std::error_code& ec, const io::Limits& lim = {});
  std::size_t read_some(void* buf, std::size_t n, const io::Limits& lim = {});
  // Exactly n bytes, unless end of stream (ec = io::eof_error()), an error or the limits;
  // returns the bytes read in every case.
  std::size_t read_exact(void* buf, std::size_t n, std::error_code& ec, const io::Limits& lim = {});
  std::size_t write_some(const void* buf, std::size_t n, std::error_code& ec,
                         const io::Limits& lim = {});
  // All n bytes (loops over partial sends); returns the bytes sent in every case.
  std::size_t write_all(const void* buf, std::size_t n, std::error_code& ec,
                        const io::Limits& lim = {});
  void write_all(const void* buf, std::size_t n, const io::Limits& lim = {});
  // SHUT_WR: the peer reads end of stream; reading still works.
  std::error_code shutdown(int how = SHUT_WR) noexcept;
  std::error_code set_nodelay(bool on) noexcept;
  SocketAddress peer_address() const;
  SocketAddress local_address() const;
  // Closes now (the destructor closes too); reports close's error.
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

class UPCALL_API TcpListener {
 public:
  TcpListener() noexcept = default;
  TcpListener(TcpListener&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  TcpListener& operator=(TcpListener&& o) noexcept;
  ~TcpListener();

  // socket + SO_REUSEADDR + bind + listen. Port 0 picks a free port (see local_address()).
  static TcpListener bind(const SocketAddress& at, std::error_code& ec, int backlog = 4096);
  static TcpListener bind(const SocketAddress& at, int backlog = 4096);

  // The next connection. EMFILE / ENFILE / ENOBUFS / ENOMEM are returned as errors like any
  // other: the listener stays usable, and a server should back off briefly and continue.
  TcpStream accept(std::error_code& ec, const io::Limits& lim = {}, SocketAddress* peer = nullptr);
  TcpStream accept(const io::Limits& lim = {}, SocketAddress* peer = nullptr);
  SocketAddress local_address() const;
  std::error_code close() noexcept;
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

class UPCALL_API UdpSocket {
 public:
  UdpSocket() noexcept = default;
  UdpSocket(UdpSocket&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  UdpSocket& operator=(UdpSocket&& o) noexcept;
  ~UdpSocket();

  static UdpSocket bind(const SocketAddress& at, std::error_code& ec);
  static UdpSocket bind(const SocketAddress& at);
  // One datagram. send_to returns the bytes sent; recv_from the datagram's size (truncated to
  // n) and its sender in *from when given.
  std::size_t send_to(const void* buf, std::size_t n, const SocketAddress& to, std::error_code& ec,
                      const io::Limits& lim = {});
  std::size_t recv_from(void* buf, std::size_t n, SocketAddress* from, std::error_code& ec,
                        const io::Limits& lim = {});
  SocketAddress local_address() const;
  std::error_code close() noexcept;
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

}  // namespace upcall::net

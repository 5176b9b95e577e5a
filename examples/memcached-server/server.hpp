// The network side of memcached-server: the accept loop and one fiber per connection.
// Owns sockets, buffers and the -c connection limit; the protocol work is Session's.
#pragma once

#include <upcall/net.hpp>

#include "session.hpp"
#include "store.hpp"

namespace mc {

struct ServerContext {
  Store& store;
  ServerStats& stats;
  ServerInfo& info;
};

// Accepts connections on `listener` until the process ends. Must run on a fiber.
void accept_loop(upcall::net::TcpListener& listener, ServerContext ctx);

}  // namespace mc

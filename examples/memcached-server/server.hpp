// The network side of memcached-server: the accept loop and one fiber per connection.
// Owns sockets, buffers and the -c connection limit; the protocol work is Session's.
#pragma once

#include <chrono>

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

// memcached's LRU crawler, simplified: every `period`, one shard at a time, frees the items that
// expired or were flushed. Runs forever; must run on a fiber.
void crawl_expired(Store& store, std::chrono::milliseconds period);

}  // namespace mc

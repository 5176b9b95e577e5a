// Network mode of rocksdb-server (--port): the same dispatcher, workers and handlers, fed by
// TCP connections speaking wire.hpp instead of the in-process Poisson generator.
#pragma once

#include <signal.h>

#include <upcall/options.hpp>

#include "experiment.hpp"

namespace rocksdb_server {

// Blocks SIGINT and SIGTERM in the calling thread, so that every thread started after it
// (RocksDB's included) leaves them to serve()'s signal thread. Call before opening the database.
sigset_t block_stop_signals();

// Serves 127.0.0.1:f.port until SIGINT or SIGTERM, then prints the table of the requests that
// arrived after the first request + --discard_duration. Returns the exit status.
int serve(const Flags& f, const Handler& h, upcall::Options opts);

}  // namespace rocksdb_server

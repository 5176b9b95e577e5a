// upcall/detail/config.hpp: build-level macros of the public API. The library is compiled with
// hidden visibility; UPCALL_API marks what it exports (internal calls then bind directly,
// without PLT indirection, which the fiber switch path measurably needs).
#pragma once

#define UPCALL_API __attribute__((visibility("default")))

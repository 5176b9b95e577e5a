// upcall/upcall.hpp: the umbrella header; includes every public header.
#pragma once

#include "upcall/blocking.hpp"
#include "upcall/options.hpp"
#include "upcall/policy.hpp"
#include "upcall/runtime.hpp"
#include "upcall/stats.hpp"
#include "upcall/task.hpp"
#include "upcall/this_task.hpp"

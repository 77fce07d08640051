// HAFS_CHECK: crash on a broken invariant, in every build. For "cannot happen", never for errors
// the world can cause (those are Statuses).
#pragma once

namespace hafs::detail {
[[noreturn]] void check_failed(const char* file, int line, const char* expr, const char* message);
}

#define HAFS_CHECK(cond, message)                                                  \
  do {                                                                             \
    if (__builtin_expect(!(cond), 0))                                              \
      ::hafs::detail::check_failed(__FILE__, __LINE__, #cond, (message));          \
  } while (0)

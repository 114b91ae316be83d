/*
 * What the three test-only fake vendor libraries share: environment knobs read at each call
 * (the tests change them between cases) and the "fail at the k-th call" counter. The fakes
 * are our own code on zlib; they imitate the vendors' status codes and output framing, never
 * their implementation.
 */
#ifndef FAKE_COMMON_H
#define FAKE_COMMON_H

#include <stdatomic.h>
#include <stdlib.h>

#define FAKE_EXPORT __attribute__((visibility("default")))

/* The knob's integer value, or `fallback` when unset or empty. */
static inline long knob(const char *name, long fallback) {
  const char *value = getenv(name);
  return value && *value ? strtol(value, NULL, 0) : fallback;
}

/* Counts one data call; true when it is the k-th and `name` (e.g. FAKE_QPL_FAIL_AT) says k. */
static inline int fail_now(atomic_long *calls, const char *name) {
  long k = knob(name, 0), n = atomic_fetch_add(calls, 1) + 1;
  return k > 0 && n == k;
}

#endif

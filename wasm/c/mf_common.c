/* Scratch buffers and error detail shared by all multifd codec modules. */
#include "mf_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

uint8_t *mf_in_buf;
uint8_t *mf_out_buf;
uint32_t mf_in_cap;
uint32_t mf_out_cap;

static char error_detail[256];

/*
 * The only import STANDALONE_WASM would otherwise keep: its sbrk tells the
 * JS runtime about memory.grow through this hook. The multifd loader checks
 * memory.buffer after every call instead, so a no-op definition here lets the
 * modules import nothing at all.
 */
void emscripten_notify_memory_growth(size_t memory_index) { (void)memory_index; }

void mf_clear_error(void) { error_detail[0] = '\0'; }

int32_t mf_fail(int32_t code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(error_detail, sizeof error_detail, fmt, ap);
  va_end(ap);
  return code;
}

int32_t mf_check_io(uint64_t in_len, uint64_t out_len) {
  if (mf_in_buf == NULL || mf_out_buf == NULL)
    return mf_fail(MF_NOMEM, "mf_reserve has not been called");
  if (in_len > mf_in_cap)
    return mf_fail(MF_DST_TOO_SMALL, "input %llu bytes > input capacity %u",
                   (unsigned long long)in_len, mf_in_cap);
  if (out_len > mf_out_cap)
    return mf_fail(MF_DST_TOO_SMALL, "output %llu bytes > output capacity %u",
                   (unsigned long long)out_len, mf_out_cap);
  return 0;
}

/* Grow one buffer; on failure the old buffer stays valid (JS may retry smaller). */
static int32_t grow(uint8_t **buf, uint32_t *cap, uint32_t want) {
  if (*buf != NULL && *cap >= want) return 0;
  uint8_t *fresh = malloc(want ? want : 1);
  if (fresh == NULL) return -1;
  free(*buf);
  *buf = fresh;
  *cap = want;
  return 0;
}

MF_EXPORT int32_t mf_reserve(uint32_t in_cap, uint32_t out_cap) {
  mf_clear_error();
  if (grow(&mf_in_buf, &mf_in_cap, in_cap) != 0 || grow(&mf_out_buf, &mf_out_cap, out_cap) != 0)
    return mf_fail(MF_NOMEM, "cannot allocate %u + %u scratch bytes", in_cap, out_cap);
  return 0;
}

MF_EXPORT uint8_t *mf_in(void) { return mf_in_buf; }
MF_EXPORT uint8_t *mf_out(void) { return mf_out_buf; }
MF_EXPORT const char *mf_error_detail(void) { return error_detail; }

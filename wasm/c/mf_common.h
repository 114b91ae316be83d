/*
 * Shared scaffolding of the multifd WASM codec modules: the two scratch
 * buffers JS writes into and reads from, the error-detail string, the return
 * codes and a few byte-order helpers. Each module (zstd.c, lz4.c, deflate.c)
 * links this file once.
 */
#ifndef MF_COMMON_H
#define MF_COMMON_H

#include <stdint.h>
#include <stddef.h>

/* Return codes shared by every module (the JS side maps them to error classes). */
#define MF_NOMEM (-1)         /* allocation failed */
#define MF_CORRUPT (-2)       /* the library rejected the compressed data */
#define MF_SIZE (-3)          /* decoded size differs from the expected size */
#define MF_TRAILING (-4)      /* input left after the complete stream */
#define MF_DST_TOO_SMALL (-5) /* output would exceed a scratch buffer */
#define MF_LEVEL (-6)         /* invalid level / acceleration */
#define MF_FORMAT (-7)        /* framing invalid (headers, length tables, checksums) */

#define MF_EXPORT __attribute__((used, visibility("default")))

extern uint8_t *mf_in_buf;
extern uint8_t *mf_out_buf;
extern uint32_t mf_in_cap;
extern uint32_t mf_out_cap;

/* Forget the previous call's error detail; every entry point starts with this. */
void mf_clear_error(void);

/* Record a printf-style detail for mf_error_detail() and return `code`. */
int32_t mf_fail(int32_t code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Check that `in_len` input bytes and `out_len` output bytes fit the scratch
 * buffers (64-bit so page_count * page_size cannot wrap). Returns 0 or a
 * negative code with the detail already set.
 */
int32_t mf_check_io(uint64_t in_len, uint64_t out_len);

static inline uint32_t mf_load_be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void mf_store_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline uint32_t mf_load_le16(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}
static inline uint32_t mf_load_le32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void mf_store_le32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}

#endif

/*
 * Fake libwd_comp.so.2 for tests: UADK's wd_comp calls, return values and request checks on
 * zlib, exported under the version node UADK_COMP_2.0 (fake-uadk.map). Like the HiSilicon
 * driver it writes a fixed zlib header 78 9c before the DEFLATE body (window per the session's
 * win_sz) and the Adler-32 after it, and on decompression skips exactly 2 (zlib) or 10 (gzip)
 * header bytes without reading them. Device errors come back in req->status, not as returns.
 *
 * Knobs: FAKE_UADK_HW=1 a device is present; FAKE_UADK_INIT=errno what wd_comp_init2_ fails with
 * without one (default ENODEV; EACCES = no permission on /dev/hisi_zip-*); FAKE_UADK_STATUS=n every request ends with device
 * status n; FAKE_UADK_FAIL_AT=k the k-th request ends with WD_VERIFY_ERR; FAKE_UADK_NOOP=1 the
 * device answers at once without touching the data (compression reports an output as long as
 * the input, so pages go raw): what is left is the cost of the shim itself.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "../vendor-abi.h"
#include "fake-common.h"

#define MAX_REQUEST_BYTES (8u << 20) /* HZ_MAX_SIZE of the HiSilicon driver */

struct fake_session {
  int alg_type, op_type, window_bits;
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int initialised;
static atomic_long requests;

FAKE_EXPORT int wd_comp_init2_(char *alg, uint32_t sched_type, int task_type, void *ctx_params) {
  (void)sched_type, (void)task_type, (void)ctx_params;
  if (alg == NULL || (strcmp(alg, "zlib") != 0 && strcmp(alg, "gzip") != 0 && strcmp(alg, "deflate") != 0)) return -EINVAL;
  if (knob("FAKE_UADK_HW", 0) != 1) return -(int)knob("FAKE_UADK_INIT", ENODEV);
  pthread_mutex_lock(&init_lock);
  int rc = initialised ? -EEXIST : 0;
  initialised = 1;
  pthread_mutex_unlock(&init_lock);
  return rc;
}

FAKE_EXPORT void wd_comp_uninit2(void) { initialised = 0; }

FAKE_EXPORT handle_t wd_comp_alloc_sess(struct wd_comp_sess_setup *setup) {
  if (!initialised || setup == NULL || setup->alg_type > WD_GZIP || setup->op_type > WD_DIR_DECOMPRESS || setup->comp_lv > 15 ||
      setup->win_sz > WD_COMP_WS_32K)
    return 0;
  struct fake_session *s = calloc(1, sizeof *s);
  if (s == NULL) return 0;
  static const int window_bits[] = {12, 13, 14, 15, 15}; /* 4K 8K 16K 24K 32K */
  *s = (struct fake_session){setup->alg_type, setup->op_type, window_bits[setup->win_sz]};
  return (handle_t)s;
}

FAKE_EXPORT void wd_comp_free_sess(handle_t h) { free((void *)h); }

FAKE_EXPORT int wd_comp_reset_sess(handle_t h) { return h ? 0 : -EINVAL; }

static const unsigned char gzip_header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};

static uint32_t compress_request(const struct fake_session *s, struct wd_comp_req *req) {
  unsigned char *dst = req->dst;
  size_t header = s->alg_type == WD_ZLIB ? 2 : s->alg_type == WD_GZIP ? sizeof gzip_header : 0;
  size_t trailer = s->alg_type == WD_DEFLATE ? 0 : s->alg_type == WD_ZLIB ? 4 : 8;
  if (req->dst_len < header + trailer) return WD_OUT_EPARA;
  z_stream z = {0};
  if (deflateInit2(&z, 1, Z_DEFLATED, -s->window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return WD_OUT_EPARA;
  z.next_in = req->src;
  z.avail_in = req->src_len;
  z.next_out = dst + header;
  z.avail_out = (uInt)(req->dst_len - header - trailer);
  int rc = deflate(&z, Z_FINISH);
  size_t body = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return WD_OUT_EPARA;
  unsigned char *end = dst + header + body;
  if (s->alg_type == WD_ZLIB) {
    dst[0] = 0x78, dst[1] = 0x9c;
    uint32_t adler = (uint32_t)adler32(1, req->src, req->src_len);
    end[0] = (unsigned char)(adler >> 24), end[1] = (unsigned char)(adler >> 16), end[2] = (unsigned char)(adler >> 8), end[3] = (unsigned char)adler;
  } else if (s->alg_type == WD_GZIP) {
    memcpy(dst, gzip_header, sizeof gzip_header);
    uint32_t crc = (uint32_t)crc32(0, req->src, req->src_len), n = req->src_len;
    for (int i = 0; i < 4; i++) end[i] = (unsigned char)(crc >> 8 * i), end[4 + i] = (unsigned char)(n >> 8 * i);
  }
  req->dst_len = (uint32_t)(header + body + trailer);
  return 0;
}

static uint32_t decompress_request(const struct fake_session *s, struct wd_comp_req *req) {
  size_t header = s->alg_type == WD_ZLIB ? 2 : s->alg_type == WD_GZIP ? sizeof gzip_header : 0; /* skipped unread */
  if (req->src_len < header) return WD_VERIFY_ERR;
  z_stream z = {0};
  if (inflateInit2(&z, -15) != Z_OK) return WD_VERIFY_ERR;
  z.next_in = (unsigned char *)req->src + header;
  z.avail_in = (uInt)(req->src_len - header);
  z.next_out = req->dst;
  z.avail_out = req->dst_len;
  int rc = inflate(&z, Z_FINISH);
  size_t used = header + z.total_in, out = z.total_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END) return rc == Z_BUF_ERROR && z.avail_out == 0 ? WD_OUT_EPARA : WD_VERIFY_ERR;
  const unsigned char *end = (unsigned char *)req->src + used;
  if (s->alg_type == WD_ZLIB) {
    uint32_t adler = (uint32_t)adler32(1, req->dst, (uInt)out);
    if (req->src_len - used < 4 || (uint32_t)(end[0] << 24 | end[1] << 16 | end[2] << 8 | end[3]) != adler) return WD_VERIFY_ERR;
    used += 4;
  } else if (s->alg_type == WD_GZIP) {
    used += 8;
  }
  req->src_len = (uint32_t)used;
  req->dst_len = (uint32_t)out;
  return 0;
}

FAKE_EXPORT int wd_do_comp_sync(handle_t h, struct wd_comp_req *req) {
  if (h == 0 || req == NULL || req->src == NULL || req->dst == NULL || req->src_len == 0 || req->dst_len == 0 || req->cb != NULL ||
      req->src_len > MAX_REQUEST_BYTES)
    return -EINVAL;
  const struct fake_session *s = (const struct fake_session *)h;
  if (s->op_type == WD_DIR_COMPRESS && s->alg_type == WD_ZLIB && req->dst_len <= 2) return -EINVAL;
  req->last = 1;
  long status = knob("FAKE_UADK_STATUS", 0);
  if (fail_now(&requests, "FAKE_UADK_FAIL_AT")) status = WD_VERIFY_ERR;
  if (!status && s->op_type == WD_DIR_COMPRESS && knob("FAKE_UADK_NOOP", 0) == 1) {
    req->dst_len = req->src_len;
    req->status = 0;
    return 0;
  }
  req->status = status ? (uint32_t)status : s->op_type == WD_DIR_COMPRESS ? compress_request(s, req) : decompress_request(s, req);
  return 0;
}

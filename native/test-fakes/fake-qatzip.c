/*
 * Fake libqatzip.so.3 for tests: QATzip's session rules, status codes and
 * QZ_DEFLATE_GZIP_EXT output on zlib. "Hardware" writes one gzip member per hw_buff_sz chunk;
 * the software backup writes one member for the whole call with a full flush at every chunk
 * boundary, as QATzip's own software path does.
 *
 * Knobs: FAKE_QZ_HW=1 a device is present (read at the first qzInit, process-wide as in
 * QATzip); FAKE_QZ_PINNED=0 no pinned memory even with a device; FAKE_QZ_DECOMP_FAIL=1 the
 * device fails every decompression (QZ_FAIL); FAKE_QZ_FAIL_AT=k the k-th data call fails.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "../vendor-abi.h"
#include "fake-common.h"

#define HEADER_BYTES 24 /* gzip header with XLEN and the 'QZ' subfield */
#define TRAILER_BYTES 8

struct fake_session {
  QzSessionParamsDeflate_T params;
  int hw;
};

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_attempted, init_hw;
static atomic_long data_calls;

FAKE_EXPORT int qzInit(QzSession_T *sess, unsigned char sw_backup) {
  if (sess == NULL || sw_backup > 1) return QZ_PARAMS;
  pthread_mutex_lock(&init_lock);
  int rc = QZ_DUPLICATE;
  if (!init_attempted) {
    init_attempted = 1;
    init_hw = knob("FAKE_QZ_HW", 0) == 1;
    rc = init_hw || sw_backup ? QZ_OK : QZ_NOSW_NO_HW;
  }
  pthread_mutex_unlock(&init_lock);
  return rc;
}

FAKE_EXPORT int qzGetDefaultsDeflate(QzSessionParamsDeflate_T *d) {
  if (d == NULL) return QZ_PARAMS;
  memset(d, 0, sizeof *d);
  d->common_params = (QzSessionParamsCommon_T){.direction = QZ_DIR_BOTH, .comp_lvl = 1, .comp_algorithm = QZ_DEFLATE, .max_forks = 3,
                                                .sw_backup = 1, .hw_buff_sz = 64 * 1024, .strm_buff_sz = 64 * 1024,
                                                .input_sz_thrshold = 1024, .req_cnt_thrshold = 32, .wait_cnt_thrshold = 8};
  d->data_fmt = QZ_DEFLATE_GZIP_EXT;
  return QZ_OK;
}

FAKE_EXPORT int qzSetupSessionDeflate(QzSession_T *sess, QzSessionParamsDeflate_T *params) {
  QzSessionParamsDeflate_T defaults;
  if (sess == NULL) return QZ_PARAMS;
  if (sess->internal) return QZ_DUPLICATE;
  if (params == NULL) qzGetDefaultsDeflate(params = &defaults);
  const QzSessionParamsCommon_T *c = &params->common_params;
  unsigned chunk = c->hw_buff_sz;
  if (c->comp_lvl < 1 || c->comp_lvl > 9 || c->sw_backup > 1 || params->data_fmt > 3 || c->comp_algorithm != QZ_DEFLATE ||
      chunk < 1024 || chunk > 512 * 1024 || (chunk & (chunk - 1)) != 0)
    return QZ_PARAMS;
  if (params->data_fmt != QZ_DEFLATE_GZIP_EXT) return QZ_NOSW_UNSUPPORTED_FMT; /* the only format this fake writes */
  int rc = qzInit(sess, c->sw_backup);
  if (rc != QZ_OK && rc != QZ_DUPLICATE) return rc;
  if (!init_hw && !c->sw_backup) return QZ_NOSW_NO_HW;
  struct fake_session *s = calloc(1, sizeof *s);
  if (s == NULL) return QZ_FAIL;
  s->params = *params;
  s->hw = init_hw;
  sess->internal = s;
  sess->hw_session_stat = s->hw ? QZ_OK : QZ_NO_HW;
  sess->thd_sess_stat = QZ_OK;
  return QZ_OK;
}

static void store_le32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8), p[2] = (unsigned char)(v >> 16), p[3] = (unsigned char)(v >> 24);
}
static uint32_t load_le32(const unsigned char *p) { return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/*
 * One GZIP_EXT member over src[0..n) at dest (room bytes), deflating with a full flush every
 * `flush_every` input bytes. Returns the member's length or 0 when it does not fit.
 */
static size_t write_member(const unsigned char *src, size_t n, unsigned char *dest, size_t room, int level, size_t flush_every) {
  static const unsigned char header[16] = {0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff, 12, 0, 'Q', 'Z', 8, 0};
  if (room < HEADER_BYTES + TRAILER_BYTES) return 0;
  z_stream z = {0};
  if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 0;
  z.next_out = dest + HEADER_BYTES;
  z.avail_out = (uInt)(room - HEADER_BYTES - TRAILER_BYTES);
  int rc;
  size_t at = 0;
  do {
    size_t take = n - at < flush_every ? n - at : flush_every;
    int final = at + take >= n;
    z.next_in = (unsigned char *)src + at;
    z.avail_in = (uInt)take;
    rc = deflate(&z, final ? Z_FINISH : Z_FULL_FLUSH);
    at += take;
    if (!final && z.avail_out == 0) rc = Z_BUF_ERROR; /* a flush that filled the output may be incomplete */
  } while (rc == Z_OK && at < n);
  size_t body = z.total_out;
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return 0;
  memcpy(dest, header, sizeof header);
  store_le32(dest + 16, (uint32_t)n);
  store_le32(dest + 20, (uint32_t)body);
  store_le32(dest + HEADER_BYTES + body, (uint32_t)crc32(0, src, (uInt)n));
  store_le32(dest + HEADER_BYTES + body + 4, (uint32_t)n);
  return HEADER_BYTES + body + TRAILER_BYTES;
}

FAKE_EXPORT int qzCompress(QzSession_T *sess, const unsigned char *src, unsigned int *src_len, unsigned char *dest, unsigned int *dest_len,
                           unsigned int last) {
  if (sess == NULL || src == NULL || src_len == NULL || dest == NULL || dest_len == NULL || last > 1) return QZ_PARAMS;
  if (sess->internal == NULL) {
    int rc = qzSetupSessionDeflate(sess, NULL);
    if (rc != QZ_OK) return rc;
  }
  if (fail_now(&data_calls, "FAKE_QZ_FAIL_AT")) return QZ_FAIL;
  struct fake_session *s = sess->internal;
  const QzSessionParamsCommon_T *c = &s->params.common_params;
  size_t n = *src_len, chunk = c->hw_buff_sz, written = 0;
  if (s->hw && n >= c->input_sz_thrshold) {
    for (size_t at = 0; at < n; at += chunk) {
      size_t take = n - at < chunk ? n - at : chunk;
      size_t member = write_member(src + at, take, dest + written, *dest_len - written, (int)c->comp_lvl, take);
      if (member == 0) return QZ_BUF_ERROR;
      written += member;
    }
  } else if ((written = write_member(src, n, dest, *dest_len, (int)c->comp_lvl, chunk)) == 0) {
    return QZ_BUF_ERROR;
  }
  *dest_len = (unsigned)written;
  sess->total_in += n;
  sess->total_out += written;
  return QZ_OK;
}

/* Length of the gzip member header at p (any RFC 1952 flags), or 0 when it is not one. */
static size_t member_header(const unsigned char *p, size_t avail) {
  if (avail < 10 || p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || (p[3] & 0xe0)) return 0;
  size_t pos = 10;
  if (p[3] & 0x04) {
    if (avail < 12 || avail - 12 < (size_t)(p[10] | p[11] << 8)) return 0;
    pos = 12 + (size_t)(p[10] | p[11] << 8);
  }
  for (unsigned bit = 0x08; bit <= 0x10; bit <<= 1) {
    if (!(p[3] & bit)) continue;
    const unsigned char *nul = memchr(p + pos, 0, avail - pos);
    if (nul == NULL) return 0;
    pos = (size_t)(nul - p) + 1;
  }
  if (p[3] & 0x02) pos += 2;
  return pos <= avail ? pos : 0;
}

FAKE_EXPORT int qzDecompress(QzSession_T *sess, const unsigned char *src, unsigned int *src_len, unsigned char *dest, unsigned int *dest_len) {
  if (sess == NULL || src == NULL || src_len == NULL || dest == NULL || dest_len == NULL) return QZ_PARAMS;
  if (sess->internal == NULL) {
    int rc = qzSetupSessionDeflate(sess, NULL);
    if (rc != QZ_OK) return rc;
  }
  if (fail_now(&data_calls, "FAKE_QZ_FAIL_AT")) return QZ_FAIL;
  struct fake_session *s = sess->internal;
  if (s->hw && knob("FAKE_QZ_DECOMP_FAIL", 0) == 1) return QZ_FAIL;
  size_t pos = 0, produced = 0;
  int rc = QZ_OK;
  while (pos < *src_len && rc == QZ_OK) {
    size_t header = member_header(src + pos, *src_len - pos);
    if (header == 0) return QZ_DATA_ERROR;
    z_stream z = {0};
    if (inflateInit2(&z, -15) != Z_OK) return QZ_FAIL;
    z.next_in = (unsigned char *)src + pos + header;
    z.avail_in = (uInt)(*src_len - pos - header);
    z.next_out = dest + produced;
    z.avail_out = (uInt)(*dest_len - produced);
    int z_rc = inflate(&z, Z_FINISH);
    size_t used = z.total_in, out = z.total_out;
    inflateEnd(&z);
    if (z_rc == Z_BUF_ERROR && z.avail_out == 0) return QZ_BUF_ERROR;
    if (z_rc != Z_STREAM_END || *src_len - pos - header - used < TRAILER_BYTES) return QZ_DATA_ERROR;
    const unsigned char *trailer = src + pos + header + used;
    if (load_le32(trailer) != (uint32_t)crc32(0, dest + produced, (uInt)out) || load_le32(trailer + 4) != (uint32_t)out) rc = QZ_DATA_ERROR;
    produced += out;
    pos += header + used + TRAILER_BYTES;
  }
  *src_len = (unsigned)pos;
  *dest_len = (unsigned)produced;
  return rc;
}

/* QATzip's no-hardware bound, with its chunk count that comes out as 1 for any input (see the notes). */
FAKE_EXPORT unsigned int qzMaxCompressedLength(unsigned int src_sz, QzSession_T *sess) {
  (void)sess;
  if (src_sz == 0) return 34;
  uint64_t chunks = src_sz / 65536 + src_sz % 65536 ? 1 : 0;
  uint64_t bound = ((uint64_t)src_sz * 9 + 7) / 8 + 48 + chunks * (HEADER_BYTES + TRAILER_BYTES);
  return bound > UINT32_MAX ? 0 : (unsigned)bound;
}

FAKE_EXPORT void *qzMalloc(size_t sz, int numa, int force_pinned) {
  (void)numa;
  if (force_pinned == QZ_PINNED_MEM && !(knob("FAKE_QZ_HW", 0) == 1 && knob("FAKE_QZ_PINNED", 1) == 1)) return NULL;
  return malloc(sz);
}

FAKE_EXPORT void qzFree(void *m) { free(m); }

FAKE_EXPORT int qzTeardownSession(QzSession_T *sess) {
  if (sess == NULL) return QZ_PARAMS;
  free(sess->internal);
  sess->internal = NULL;
  return QZ_OK;
}

FAKE_EXPORT int qzClose(QzSession_T *sess) { return sess == NULL ? QZ_PARAMS : QZ_OK; }

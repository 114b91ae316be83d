/*
 * Fake libqpl.so.1 for tests: QPL's job API and status codes on zlib. Compression is raw
 * DEFLATE with a 4 KiB window (zlib windowBits -12, distances <= 3834); decompression runs in
 * small output steps so that, as on IAA, a back-reference beyond 4 KiB fails with
 * QPL_STS_BAD_DIST_ERR. Jobs are bigger than the public head, so callers must size them with
 * qpl_get_job_size. Submission does the work; wait reports it.
 *
 * Knobs: FAKE_QPL_HW=1 an IAA work queue is usable; FAKE_QPL_INIT=status what a hardware
 * qpl_init_job returns without one (default 500; 503 = no work queue or no permission);
 * FAKE_QPL_BUSY=n the first n submissions find the queues busy; FAKE_QPL_HWFAIL=status every
 * hardware decompression ends with that status; FAKE_QPL_FAIL_AT=k the k-th submission fails;
 * FAKE_QPL_NOOP=1 the device answers at once without touching the data (compression reports
 * MORE_OUTPUT_NEEDED, so pages go raw): what is left is the cost of the shim itself;
 * FAKE_QPL_REJECT_D16=1 the device refuses, as IAA does, a raw DEFLATE stream with a dynamic
 * header whose code-length run crosses into the distance lengths (see iaa_header_status);
 * FAKE_QPL_QUEUE=n the work queue holds n jobs: a hardware submission while n are submitted
 * and not yet waited for finds it busy.
 */
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "../vendor-abi.h"
#include "fake-common.h"

#define STEP_BYTES 64 /* output step of the decoder: the window check is exact to within this */

/* Completion-record errors of IAA's header parser (qpl 1.6.0 include/qpl/c_api/status.h). */
#define QPL_STS_FIRST_D_CODE_16_ERR 204    /* the first distance code length is a 16 */
#define QPL_STS_WRONG_NUM_LL_CODES_ERR 206 /* the literal/length code lengths do not add up */

struct fake_job {
  qpl_job head;
  unsigned char more_public_fields[200];
  int path;
  int submitted;
  int result;
};

static atomic_long submissions, busy_answers;
static atomic_long queued; /* hardware jobs submitted and not yet waited for (FAKE_QPL_QUEUE) */

FAKE_EXPORT const char *qpl_get_library_version(void) { return "1.6.0 (multifd test fake)"; }

FAKE_EXPORT int qpl_get_job_size(int path, uint32_t *job_size) {
  if (job_size == NULL) return QPL_STS_NULL_PTR_ERR;
  if (path < QPL_PATH_AUTO || path > QPL_PATH_SOFTWARE) return QPL_STS_PATH_ERR;
  *job_size = sizeof(struct fake_job);
  return QPL_STS_OK;
}

FAKE_EXPORT int qpl_init_job(int path, qpl_job *job) {
  if (job == NULL) return QPL_STS_NULL_PTR_ERR;
  if (path < QPL_PATH_AUTO || path > QPL_PATH_SOFTWARE) return QPL_STS_PATH_ERR;
  if (path == QPL_PATH_HARDWARE && knob("FAKE_QPL_HW", 0) != 1) return (int)knob("FAKE_QPL_INIT", QPL_STS_INIT_HW_NOT_SUPPORTED);
  memset(job, 0, sizeof(struct fake_job));
  ((struct fake_job *)job)->path = path;
  return QPL_STS_OK;
}

static int compress_job(qpl_job *job) {
  if (job->level != QPL_LEVEL_1 && job->level != QPL_LEVEL_3) return QPL_STS_UNSUPPORTED_COMPRESSION_LEVEL;
  if (job->flags & QPL_FLAG_CANNED_MODE) return QPL_STS_INVALID_PARAM_ERR;
  int bits = job->flags & QPL_FLAG_ZLIB_MODE ? 12 : job->flags & QPL_FLAG_GZIP_MODE ? 12 + 16 : -12;
  z_stream z = {0};
  if (deflateInit2(&z, job->level == QPL_LEVEL_3 ? 6 : 1, Z_DEFLATED, bits, 8, Z_DEFAULT_STRATEGY) != Z_OK) return QPL_STS_LIBRARY_INTERNAL_ERR;
  z.next_in = job->next_in_ptr;
  z.avail_in = job->available_in;
  z.next_out = job->next_out_ptr;
  z.avail_out = job->available_out;
  int rc = deflate(&z, Z_FINISH);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) return QPL_STS_MORE_OUTPUT_NEEDED;
  job->total_in = (uint32_t)z.total_in;
  job->total_out = (uint32_t)z.total_out;
  job->next_in_ptr += z.total_in, job->available_in -= (uint32_t)z.total_in;
  job->next_out_ptr += z.total_out, job->available_out -= (uint32_t)z.total_out;
  return QPL_STS_OK;
}

static int decompress_job(qpl_job *job) {
  int bits = job->flags & QPL_FLAG_ZLIB_MODE ? 12 : job->flags & QPL_FLAG_GZIP_MODE ? 12 + 16 : -12;
  z_stream z = {0};
  if (inflateInit2(&z, bits) != Z_OK) return QPL_STS_LIBRARY_INTERNAL_ERR;
  z.next_in = job->next_in_ptr;
  z.avail_in = job->available_in;
  z.next_out = job->next_out_ptr;
  int rc = Z_OK;
  uint32_t room = job->available_out;
  while (rc == Z_OK && z.total_out < room) {
    z.avail_out = room - (uint32_t)z.total_out < STEP_BYTES ? room - (uint32_t)z.total_out : STEP_BYTES;
    rc = inflate(&z, Z_NO_FLUSH); /* Z_BUF_ERROR here: the input ran out */
  }
  unsigned char spare;
  if (rc == Z_OK) { /* the output is full: the stream may still end without another byte */
    z.next_out = &spare;
    z.avail_out = 1;
    rc = inflate(&z, Z_NO_FLUSH);
    if (z.avail_out == 0) rc = Z_OK;
  }
  const char *why = z.msg;
  job->total_in = (uint32_t)z.total_in;
  job->total_out = (uint32_t)(z.total_out < room ? z.total_out : room);
  inflateEnd(&z);
  if (rc == Z_STREAM_END) return QPL_STS_OK;
  if (rc == Z_DATA_ERROR) return why && strstr(why, "too far back") ? QPL_STS_BAD_DIST_ERR : QPL_STS_INVALID_DEFLATE_DATA_ERR;
  return rc == Z_OK ? QPL_STS_MORE_OUTPUT_NEEDED : QPL_STS_MORE_INPUT_NEEDED;
}

/*
 * IAA's reading of dynamic block headers. RFC 1951 lets one code-length run (16: repeat the
 * previous length; 17, 18: zeros) reach from the literal/length lengths into the distance
 * lengths, and zlib accepts that; IAA parses the two as separate sequences and stops with
 * WRONG_NUM_LL_CODES when a run overshoots the literal/length count, and with FIRST_D_CODE_16
 * when the distance lengths open with a 16 (intel/qpl#21; QPL's own negative tests expect
 * these two codes from the hardware path only). Deliberately its own code, apart from the
 * encoder's walker in wasm/c/deflate_iaa.c: the fake is what that walker is judged by. Slow
 * and simple (one bit at a time), and silent about anything else wrong: zlib judges that.
 */
struct bit_source {
  const unsigned char *in;
  size_t bits, at;
};

static int read_bits(struct bit_source *b, int n, unsigned *value) {
  *value = 0;
  for (int i = 0; i < n; i++, b->at++) {
    if (b->at >= b->bits) return 0;
    *value |= (unsigned)(b->in[b->at / 8] >> (b->at % 8) & 1) << i;
  }
  return 1;
}

/* A canonical Huffman code (RFC 1951, 3.2.2) held as each symbol's length and codeword. */
struct fake_code {
  int symbols;
  unsigned char length[288];
  unsigned short codeword[288];
};

static void make_code(struct fake_code *c, const unsigned char *lengths, int symbols) {
  int per_length[16] = {0}, next[16] = {0};
  c->symbols = symbols;
  memcpy(c->length, lengths, (size_t)symbols);
  for (int s = 0; s < symbols; s++) per_length[lengths[s]]++;
  per_length[0] = 0;
  for (int n = 1, code = 0; n < 16; n++) next[n] = code = (code + per_length[n - 1]) << 1;
  for (int s = 0; s < symbols; s++) if (lengths[s] != 0) c->codeword[s] = (unsigned short)next[lengths[s]]++;
}

/* The next symbol: one more bit at a time, then a search for a codeword of that length. */
static int read_symbol(struct bit_source *b, const struct fake_code *c) {
  unsigned codeword = 0, bit;
  for (int n = 1; n < 16; n++) {
    if (!read_bits(b, 1, &bit)) return -1;
    codeword = codeword << 1 | bit;
    for (int s = 0; s < c->symbols; s++) if (c->length[s] == n && c->codeword[s] == codeword) return s;
  }
  return -1;
}

/* Reads a block's symbols through its end-of-block; 0 when the stream breaks off. */
static int pass_block_data(struct bit_source *b, const struct fake_code *litlen, const struct fake_code *dist) {
  unsigned ignored;
  for (int sym; (sym = read_symbol(b, litlen)) != 256;) {
    if (sym < 0 || sym > 285) return 0;
    if (sym < 256) continue;
    if (!read_bits(b, sym < 265 || sym == 285 ? 0 : (sym - 261) / 4, &ignored)) return 0; /* length extra bits */
    int d = read_symbol(b, dist);
    if (d < 0 || d > 29 || !read_bits(b, d < 4 ? 0 : d / 2 - 1, &ignored)) return 0;
  }
  return 1;
}

static int iaa_header_status(const unsigned char *in, size_t length) {
  static const unsigned char order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  struct bit_source b = {in, 8 * length, 0};
  unsigned final = 0, type, v;
  while (!final && read_bits(&b, 1, &final) && read_bits(&b, 2, &type)) {
    unsigned char lengths[288 + 32] = {0};
    struct fake_code litlen, dist;
    if (type == 0) {
      b.at = (b.at + 7) / 8 * 8;
      if (!read_bits(&b, 16, &v)) break;
      b.at += 16 + 8 * (size_t)v;
      continue;
    }
    if (type == 1) {
      memset(lengths, 8, 144), memset(lengths + 144, 9, 112), memset(lengths + 256, 7, 24), memset(lengths + 280, 8, 8);
      make_code(&litlen, lengths, 288);
      memset(lengths, 5, 30);
      make_code(&dist, lengths, 30);
    } else if (type == 2) {
      unsigned hlit, hdist, hclen;
      unsigned char precode_lengths[19] = {0};
      if (!read_bits(&b, 5, &hlit) || !read_bits(&b, 5, &hdist) || !read_bits(&b, 4, &hclen)) break;
      hlit += 257, hdist += 1;
      for (unsigned i = 0; i < hclen + 4 && read_bits(&b, 3, &v); i++) precode_lengths[order[i]] = (unsigned char)v;
      struct fake_code precode;
      make_code(&precode, precode_lengths, 19);
      for (unsigned n = 0; n < hlit + hdist;) {
        int sym = read_symbol(&b, &precode);
        if (sym < 0) return QPL_STS_OK;
        if (sym < 16) {
          lengths[n++] = (unsigned char)sym;
          continue;
        }
        if (!read_bits(&b, sym == 16 ? 2 : sym == 17 ? 3 : 7, &v)) return QPL_STS_OK;
        unsigned count = v + (sym == 18 ? 11 : 3);
        if (sym == 16 && n == hlit) return QPL_STS_FIRST_D_CODE_16_ERR;
        if (n < hlit && n + count > hlit) return QPL_STS_WRONG_NUM_LL_CODES_ERR;
        if (n + count > hlit + hdist || (sym == 16 && n == 0)) return QPL_STS_OK;
        memset(lengths + n, sym == 16 ? lengths[n - 1] : 0, count);
        n += count;
      }
      make_code(&litlen, lengths, (int)hlit);
      make_code(&dist, lengths + hlit, (int)hdist);
    } else {
      break;
    }
    if (!final && !pass_block_data(&b, &litlen, &dist)) break;
  }
  return QPL_STS_OK;
}

FAKE_EXPORT int qpl_submit_job(qpl_job *job) {
  if (job == NULL) return QPL_STS_NULL_PTR_ERR;
  struct fake_job *fake = (struct fake_job *)job;
  if (fake->path == QPL_PATH_HARDWARE && atomic_fetch_add(&busy_answers, 1) < knob("FAKE_QPL_BUSY", 0)) return QPL_STS_QUEUES_ARE_BUSY_ERR;
  if (fake->path == QPL_PATH_HARDWARE && knob("FAKE_QPL_QUEUE", 0) > 0 && atomic_load(&queued) >= knob("FAKE_QPL_QUEUE", 0)) return QPL_STS_QUEUES_ARE_BUSY_ERR;
  if ((job->flags & (QPL_FLAG_FIRST | QPL_FLAG_LAST)) != (QPL_FLAG_FIRST | QPL_FLAG_LAST)) return QPL_STS_INVALID_PARAM_ERR; /* one-job streams only */
  if (job->op != QPL_OP_COMPRESS && job->op != QPL_OP_DECOMPRESS) return QPL_STS_INVALID_PARAM_ERR;
  fake->submitted = 1;
  if (fake->path == QPL_PATH_HARDWARE) atomic_fetch_add(&queued, 1);
  if (fail_now(&submissions, "FAKE_QPL_FAIL_AT")) fake->result = QPL_STS_LIBRARY_INTERNAL_ERR;
  else if (job->op == QPL_OP_COMPRESS) fake->result = knob("FAKE_QPL_NOOP", 0) == 1 ? QPL_STS_MORE_OUTPUT_NEEDED : compress_job(job);
  else if (fake->path == QPL_PATH_HARDWARE && knob("FAKE_QPL_HWFAIL", 0) != 0) fake->result = (int)knob("FAKE_QPL_HWFAIL", 0);
  else if (fake->path == QPL_PATH_HARDWARE && knob("FAKE_QPL_REJECT_D16", 0) == 1 && !(job->flags & (QPL_FLAG_ZLIB_MODE | QPL_FLAG_GZIP_MODE)) &&
           (fake->result = iaa_header_status(job->next_in_ptr, job->available_in)) != QPL_STS_OK) {
    job->total_in = job->total_out = 0;
  } else fake->result = decompress_job(job);
  return QPL_STS_OK;
}

FAKE_EXPORT int qpl_wait_job(qpl_job *job) {
  if (job == NULL) return QPL_STS_NULL_PTR_ERR;
  struct fake_job *fake = (struct fake_job *)job;
  if (!fake->submitted) return QPL_STS_JOB_NOT_SUBMITTED;
  fake->submitted = 0;
  if (fake->path == QPL_PATH_HARDWARE) atomic_fetch_sub(&queued, 1);
  return fake->result;
}

FAKE_EXPORT int qpl_check_job(qpl_job *job) {
  if (job == NULL) return QPL_STS_NULL_PTR_ERR;
  struct fake_job *fake = (struct fake_job *)job;
  return fake->submitted ? fake->result : QPL_STS_JOB_NOT_SUBMITTED;
}

FAKE_EXPORT int qpl_execute_job(qpl_job *job) {
  int rc = qpl_submit_job(job);
  return rc == QPL_STS_OK ? qpl_wait_job(job) : rc;
}

FAKE_EXPORT int qpl_fini_job(qpl_job *job) { return job == NULL ? QPL_STS_NULL_PTR_ERR : QPL_STS_OK; }

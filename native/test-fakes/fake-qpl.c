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
 * MORE_OUTPUT_NEEDED, so pages go raw): what is left is the cost of the shim itself.
 */
#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "../vendor-abi.h"
#include "fake-common.h"

#define STEP_BYTES 64 /* output step of the decoder: the window check is exact to within this */

struct fake_job {
  qpl_job head;
  unsigned char more_public_fields[200];
  int path;
  int submitted;
  int result;
};

static atomic_long submissions, busy_answers;

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

FAKE_EXPORT int qpl_submit_job(qpl_job *job) {
  if (job == NULL) return QPL_STS_NULL_PTR_ERR;
  struct fake_job *fake = (struct fake_job *)job;
  if (fake->path == QPL_PATH_HARDWARE && atomic_fetch_add(&busy_answers, 1) < knob("FAKE_QPL_BUSY", 0)) return QPL_STS_QUEUES_ARE_BUSY_ERR;
  if ((job->flags & (QPL_FLAG_FIRST | QPL_FLAG_LAST)) != (QPL_FLAG_FIRST | QPL_FLAG_LAST)) return QPL_STS_INVALID_PARAM_ERR; /* one-job streams only */
  if (job->op != QPL_OP_COMPRESS && job->op != QPL_OP_DECOMPRESS) return QPL_STS_INVALID_PARAM_ERR;
  fake->submitted = 1;
  if (fail_now(&submissions, "FAKE_QPL_FAIL_AT")) fake->result = QPL_STS_LIBRARY_INTERNAL_ERR;
  else if (job->op == QPL_OP_COMPRESS) fake->result = knob("FAKE_QPL_NOOP", 0) == 1 ? QPL_STS_MORE_OUTPUT_NEEDED : compress_job(job);
  else if (fake->path == QPL_PATH_HARDWARE && knob("FAKE_QPL_HWFAIL", 0) != 0) fake->result = (int)knob("FAKE_QPL_HWFAIL", 0);
  else fake->result = decompress_job(job);
  return QPL_STS_OK;
}

FAKE_EXPORT int qpl_wait_job(qpl_job *job) {
  if (job == NULL) return QPL_STS_NULL_PTR_ERR;
  struct fake_job *fake = (struct fake_job *)job;
  if (!fake->submitted) return QPL_STS_JOB_NOT_SUBMITTED;
  fake->submitted = 0;
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

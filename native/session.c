/*
 * The vendor sessions (session.h): QATzip compresses a whole packet in one call, with the
 * library's own software backup when it has no device; QPL and UADK work page by page and
 * mark, per page, what the device refused so that the caller redoes it in software.
 */
#include <stdlib.h>
#include <string.h>

#include "session.h"

static void free_buffer(struct session *s, void *buffer) {
  if (s->pinned) s->lib->api.qz.free(buffer);
  else free(buffer);
}

void release_session(struct session *s) {
  struct library *lib = s->lib;
  if (s->released) return;
  s->released = 1;
  if (lib->vendor == QATZIP && s->qz.internal) {
    lib->api.qz.teardown(&s->qz);
    lib->api.qz.close(&s->qz);
  }
  if (s->jobs) {
    for (uint32_t i = 0; i < s->job_count && s->jobs[i]; i++) {
      lib->api.qpl.fini_job(s->jobs[i]);
      free(s->jobs[i]);
    }
    free(s->jobs);
  }
  if (s->uadk) lib->api.uadk.free_sess(s->uadk);
  free_buffer(s, s->in);
  free_buffer(s, s->out);
  free(s->submit_rc);
}

void close_session(struct session *s) {
  release_session(s);
  free(s->pages);
  free(s);
}

/*
 * QATzip buffers: pinned (DMA-able) memory first, normal memory when there is none, as QEMU; on
 * the node the library can take (QATzip before 1.3.0 does not know QZ_AUTO_SELECT_NUMA_NODE).
 */
static int qz_buffers(struct session *s) {
  struct qz_api *qz = &s->lib->api.qz;
  int node = s->lib->qz_numa;
  s->pinned = 1;
  s->in = qz->malloc(s->in_cap, node, QZ_PINNED_MEM);
  s->out = qz->malloc(s->out_cap, node, QZ_PINNED_MEM);
  if (s->in && s->out) return 1;
  free_buffer(s, s->in);
  free_buffer(s, s->out);
  s->in = qz->malloc(s->in_cap, node, QZ_COMMON_MEM);
  s->out = qz->malloc(s->out_cap, node, QZ_COMMON_MEM);
  return s->in && s->out;
}

/*
 * Without a device every QATzip call repeats the library's init and prints the same two
 * no-device lines: a backup session turns QATzip's (process-wide) log off around its calls.
 * Returns the level to put back, or -1.
 */
static int qz_hush(struct session *s) {
  return s->qz_quiet && s->lib->qz_set_log_level ? s->lib->qz_set_log_level(QZ_LOG_NONE) : -1;
}

static void qz_unhush(struct session *s, int level) {
  if (level >= 0) s->lib->qz_set_log_level(level);
}

/* The QPL jobs of a session: one on the software path (it runs at submission), else up to QPL_MAX_JOBS. */
static const char *open_qpl_jobs(struct session *s, int require_hw, const char **code, char *message, size_t size) {
  struct qpl_api *qpl = &s->lib->api.qpl;
  int software = s->lib->qpl_mode == QPL_MODE_SOFTWARE;
  if (software && require_hw) return say(message, size, "MULTIFD_QPL_PATH=software: libqpl's software path does the work, not a device"), message;
  int path = software ? QPL_PATH_SOFTWARE : QPL_PATH_HARDWARE;
  s->page_done = software ? PAGE_LIBRARY_SW : PAGE_HW;
  s->job_count = software ? 1 : s->max_pages < QPL_MAX_JOBS ? s->max_pages : QPL_MAX_JOBS;
  uint32_t job_size = 0;
  int rc = qpl->get_job_size(path, &job_size);
  if (rc != QPL_STS_OK) return say(message, size, "qpl_get_job_size returned %d", rc), message;
  if ((s->jobs = calloc(s->job_count, sizeof *s->jobs)) == NULL) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate QPL jobs"), message;
  for (uint32_t i = 0; i < s->job_count; i++) {
    if ((s->jobs[i] = calloc(1, job_size)) == NULL) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate a QPL job"), message;
    if ((rc = qpl->init_job(path, s->jobs[i])) != QPL_STS_OK) {
      free(s->jobs[i]);
      s->jobs[i] = NULL;
      return say(message, size, "qpl_init_job on the %s path returned %d", software ? "software" : "hardware", rc), message;
    }
  }
  return NULL;
}

const char *open_session(struct session *s, unsigned level, int require_hw, int library_software, const char **code, char *message, size_t size) {
  struct library *lib = s->lib;
  size_t packet = (size_t)s->page_size * s->max_pages;
  *code = "ERR_CODEC_HW_UNAVAILABLE";
  s->page_done = PAGE_HW;
  if (lib->vendor == QATZIP) {
    struct qz_api *qz = &lib->api.qz;
    /* Without a device QATzip's software backup repeats its init and leaks a pthread key per call: software is ours. */
    if (!lib->available && !library_software) return say(message, size, "%s", lib->reason), message;
    QzParamsRoom params;
    memset(&params, 0, sizeof params);
    s->qz_quiet = !lib->available;
    int log_level = qz_hush(s);
    int rc = qz->init(&s->qz, require_hw ? 0 : 1);
    int defaults = qz->get_defaults(&params.p);
    params.p.common_params.comp_lvl = level;
    params.p.common_params.sw_backup = require_hw ? 0 : 1;
    int setup = rc == QZ_OK || rc == QZ_DUPLICATE ? qz->setup(&s->qz, &params.p) : rc;
    qz_unhush(s, log_level);
    if (rc != QZ_OK && rc != QZ_DUPLICATE) return say(message, size, "qzInit returned %d", rc), message;
    if (defaults != QZ_OK) return say(message, size, "qzGetDefaultsDeflate returned %d", defaults), message;
    if ((rc = setup) != QZ_OK && rc != QZ_DUPLICATE) return say(message, size, "qzSetupSessionDeflate returned %d (%s)", rc, lib->reason), message;
    s->qz_threshold = params.p.common_params.input_sz_thrshold;
    /* The receiver's input may exceed the packet (no raw fallback), as QEMU's 2 x packet buffer. */
    s->in_cap = s->compress ? packet : 2 * packet;
    s->out_cap = s->compress ? qz->max_compressed_length((unsigned)packet, &s->qz) : packet;
    if (s->out_cap == 0 || !qz_buffers(s)) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate QATzip buffers"), message;
    return NULL;
  }
  if (!lib->available) return say(message, size, "%s", lib->reason), message;
  /* Page codecs: pages copied in, one output slot per page (UADK gets 2 pages of room, as QEMU). */
  s->in_cap = packet;
  s->out_cap = (lib->vendor == UADK && s->compress ? 2 : 1) * packet;
  s->in = malloc(s->in_cap);
  s->out = malloc(s->out_cap);
  s->submit_rc = calloc(s->max_pages, sizeof *s->submit_rc);
  if (!s->in || !s->out || !s->submit_rc) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate page buffers"), message;
  if (lib->vendor == QPL) return open_qpl_jobs(s, require_hw, code, message, size);
  unsigned char setup_room[VENDOR_STRUCT_ROOM] = {0};
  struct wd_comp_sess_setup *setup = (void *)setup_room;
  setup->alg_type = WD_ZLIB;
  setup->win_sz = WD_COMP_WS_4K;
  setup->op_type = s->compress ? WD_DIR_COMPRESS : WD_DIR_DECOMPRESS;
  ((struct sched_params *)s->sched_room)->type = (uint8_t)setup->op_type;
  setup->sched_param = s->sched_room;
  if ((s->uadk = lib->api.uadk.alloc_sess(setup)) == 0) return say(message, size, "wd_comp_alloc_sess failed"), message;
  return NULL;
}

static int32_t encode_qatzip(struct session *s, uint32_t count, int32_t *status) {
  struct qz_api *qz = &s->lib->api.qz;
  unsigned n = count * s->page_size, src_len = n, dest_len = (unsigned)s->out_cap;
  for (uint32_t i = 0; i < count; i++) memcpy(s->in + (size_t)i * s->page_size, s->pages[i], s->page_size);
  int level = qz_hush(s);
  int rc = qz->compress(&s->qz, s->in, &src_len, s->out, &dest_len, 1);
  qz_unhush(s, level);
  /* QZ_OK with part of the input left over is a failure too (intel/QATzip#104). */
  int outcome = rc != QZ_OK || src_len != n ? PAGE_NEEDS_SW : s->qz.hw_session_stat == QZ_OK && n >= s->qz_threshold ? PAGE_HW : PAGE_LIBRARY_SW;
  for (uint32_t i = 0; i < count; i++) status[i] = outcome;
  return outcome == PAGE_NEEDS_SW ? 0 : (int32_t)dest_len;
}

/* Submits a QPL job, retrying a busy queue as QEMU does. */
static int qpl_submit(struct qpl_api *qpl, qpl_job *job) {
  int rc = qpl->submit_job(job);
  for (int retry = 0; rc == QPL_STS_QUEUES_ARE_BUSY_ERR && retry < QPL_SUBMIT_RETRIES; retry++) rc = qpl->submit_job(job);
  return rc;
}

/*
 * Per page: the compressed bytes into the page's output slot and its length into lengths[];
 * page_size means raw (the device found it incompressible, or it needs software).
 */
static void encode_pages(struct session *s, uint32_t count, int32_t *status, uint32_t *lengths) {
  struct library *lib = s->lib;
  uint32_t ps = s->page_size;
  for (uint32_t i = 0; i < count; i++) memcpy(s->in + (size_t)i * ps, s->pages[i], ps);
  if (lib->vendor == QPL) {
    /*
     * A batch of pages (one per job) goes to the device before the first is waited for, so the
     * engines work in parallel; on the software path a batch is one page, done at submission.
     */
    for (uint32_t first = 0; first < count; first += s->job_count) {
      uint32_t end = count - first < s->job_count ? count : first + s->job_count;
      for (uint32_t i = first; i < end; i++) {
        qpl_job *job = s->jobs[i - first];
        job->next_in_ptr = s->in + (size_t)i * ps;
        job->available_in = ps;
        job->next_out_ptr = s->out + (size_t)i * ps;
        job->available_out = ps - 1; /* output that does not shrink fails and goes raw */
        job->op = QPL_OP_COMPRESS;
        job->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_OMIT_VERIFY;
        job->level = QPL_LEVEL_1;
        s->submit_rc[i] = qpl_submit(&lib->api.qpl, job);
      }
      for (uint32_t i = first; i < end; i++) {
        qpl_job *job = s->jobs[i - first];
        /* libqpl's software path runs the job in qpl_submit_job and returns its result there. */
        int rc = s->submit_rc[i] == QPL_STS_OK ? lib->api.qpl.wait_job(job) : s->submit_rc[i];
        status[i] = rc == QPL_STS_OK || rc == QPL_STS_MORE_OUTPUT_NEEDED ? s->page_done : PAGE_NEEDS_SW;
        lengths[i] = rc == QPL_STS_OK ? job->total_out : ps;
      }
    }
    return;
  }
  for (uint32_t i = 0; i < count; i++) {
    struct wd_comp_req req = {0};
    req.src = s->in + (size_t)i * ps;
    req.src_len = ps;
    req.dst = s->out + (size_t)i * 2 * ps;
    req.dst_len = 2 * ps;
    req.op_type = WD_DIR_COMPRESS;
    req.data_fmt = WD_FLAT_BUF;
    req.last = 1;
    int rc = lib->api.uadk.comp_sync(s->uadk, &req);
    status[i] = rc == 0 && req.status == 0 ? PAGE_HW : PAGE_NEEDS_SW;
    lengths[i] = status[i] == PAGE_HW && req.dst_len < ps ? req.dst_len : ps;
  }
}

int64_t session_encode(struct session *s, uint32_t count, int32_t *status, uint8_t *out, size_t out_len) {
  int64_t written;
  if (s->lib->vendor == QATZIP) {
    written = encode_qatzip(s, count, status);
    if (written > (int64_t)out_len) written = -1;
    else memcpy(out, s->out, (size_t)written);
  } else {
    uint32_t lengths[count ? count : 1];
    encode_pages(s, count, status, lengths);
    /* The payload: be32 lengths, then each page's bytes (compressed, or the page itself). */
    written = 4ll * count;
    for (uint32_t i = 0; i < count; i++) written += lengths[i];
    if (written > (int64_t)out_len) {
      written = -1;
    } else {
      uint8_t *at = out + 4ull * count;
      size_t slot = (s->lib->vendor == UADK ? 2 : 1) * (size_t)s->page_size;
      for (uint32_t i = 0; i < count; i++) {
        uint32_t n = lengths[i];
        out[4 * i] = (uint8_t)(n >> 24), out[4 * i + 1] = (uint8_t)(n >> 16), out[4 * i + 2] = (uint8_t)(n >> 8), out[4 * i + 3] = (uint8_t)n;
        memcpy(at, n == s->page_size ? s->in + (size_t)i * s->page_size : s->out + i * slot, n);
        at += n;
      }
    }
  }
  return written;
}

static int decode_qatzip(struct session *s, const uint8_t *payload, size_t length, uint32_t count, int32_t *status) {
  if (length > s->in_cap) return 2;
  unsigned src_len = (unsigned)length, dest_len = count * s->page_size;
  memcpy(s->in, payload, length);
  int level = qz_hush(s);
  int rc = s->lib->api.qz.decompress(&s->qz, s->in, &src_len, s->out, &dest_len);
  qz_unhush(s, level);
  if (rc != QZ_OK || src_len != length || dest_len != count * s->page_size) return 2;
  int outcome = s->qz.hw_session_stat == QZ_OK && length >= s->qz_threshold ? PAGE_HW : PAGE_LIBRARY_SW;
  for (uint32_t i = 0; i < count; i++) status[i] = outcome;
  return 0;
}

static uint32_t load_be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Per page into its output slot; pages the device refused are marked for software. */
static int decode_pages(struct session *s, const uint8_t *payload, size_t length, uint32_t count, int32_t *status) {
  struct library *lib = s->lib;
  uint32_t ps = s->page_size;
  uint64_t total = 4ull * count;
  if (length < total) return 2;
  for (uint32_t i = 0; i < count; i++) {
    uint32_t n = load_be32(payload + 4 * i);
    if (n > ps) return 2;
    total += n;
  }
  if (total != length) return 2;
  const uint8_t *src = payload + 4ull * count;
  int needs_sw = 0;
  /* QPL in batches of its jobs, waited for after each batch; UADK answers each page at once. */
  uint32_t batch = lib->vendor == QPL ? s->job_count : count;
  for (uint32_t first = 0; first < count; first += batch) {
    uint32_t end = count - first < batch ? count : first + batch;
    for (uint32_t i = first; i < end; i++) {
      uint32_t n = load_be32(payload + 4 * i);
      uint8_t *slot = s->out + (size_t)i * ps;
      s->submit_rc[i] = QPL_STS_JOB_NOT_SUBMITTED;
      status[i] = s->page_done;
      if (n == ps) {
        memcpy(slot, src, ps);
      } else if (lib->vendor == QPL) {
        qpl_job *job = s->jobs[i - first];
        job->next_in_ptr = (uint8_t *)src;
        job->available_in = n;
        job->next_out_ptr = slot;
        job->available_out = ps;
        job->op = QPL_OP_DECOMPRESS;
        job->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_OMIT_VERIFY;
        if ((s->submit_rc[i] = qpl_submit(&lib->api.qpl, job)) != QPL_STS_OK) status[i] = PAGE_NEEDS_SW;
      } else {
        struct wd_comp_req req = {0};
        req.src = (void *)src;
        req.src_len = n;
        req.dst = slot;
        req.dst_len = ps;
        req.op_type = WD_DIR_DECOMPRESS;
        req.data_fmt = WD_FLAT_BUF;
        req.last = 1;
        int rc = lib->api.uadk.comp_sync(s->uadk, &req);
        if (rc != 0 || req.status != 0 || req.dst_len != ps) status[i] = PAGE_NEEDS_SW;
      }
      src += n;
    }
    for (uint32_t i = first; i < end; i++) {
      qpl_job *job = s->submit_rc[i] == QPL_STS_OK ? s->jobs[i - first] : NULL;
      /* Any device decode error is retried in software: IAA rejects some valid streams (intel/qpl#21). */
      if (job && (lib->api.qpl.wait_job(job) != QPL_STS_OK || job->total_out != ps)) status[i] = PAGE_NEEDS_SW;
      needs_sw |= status[i] == PAGE_NEEDS_SW;
    }
  }
  return needs_sw;
}

void session_apply(struct session *s, uint32_t count, const int32_t *status) {
  for (uint32_t i = 0; i < count; i++) {
    if (status[i] != PAGE_NEEDS_SW) memcpy(s->pages[i], s->out + (size_t)i * s->page_size, s->page_size);
  }
}

int session_decode(struct session *s, const uint8_t *payload, size_t length, uint32_t count, int32_t *status) {
  int outcome = s->lib->vendor == QATZIP ? decode_qatzip(s, payload, length, count, status) : decode_pages(s, payload, length, count, status);
  if (outcome == 0) session_apply(s, count, status);
  return outcome;
}

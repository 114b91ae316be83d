/*
 * multifd's hardware compression shim: a plain-C Node-API addon that dlopens QATzip
 * (libqatzip.so.3), QPL (libqpl.so.1) or UADK (libwd_comp.so.2) on first use and runs one
 * packet's pages through the device. It links nothing but libc: every vendor function is
 * looked up with dlsym against our own prototypes (vendor-abi.h).
 *
 * JavaScript side: src/native/addon.ts. The calls are synchronous and meant for pool worker
 * threads, one session per worker and direction (the vendors' sessions, jobs and handles are
 * not reentrant). Software fallbacks live in JavaScript (the WASM codecs): this file only
 * reports, per page, whether the device did the work or the page needs software.
 *
 *   probe(vendor, path|null)            -> {loaded, available, reason, detail}; never throws
 *   open(vendor, path|null, compress, level, pageSize, maxPages, requireHw) -> session
 *   encode(session, pages, out, status) -> payload bytes, or -1 when `out` is too small
 *   decode(session, payload, pages, status) -> 0 applied | 1 pages need software | 2 software decides
 *   apply(session, pages, status)       -> copies the pages the device decoded (after 1)
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vendor-abi.h"

enum vendor { QATZIP, QPL, UADK, VENDOR_COUNT };
static const char *const vendor_ids[VENDOR_COUNT] = {"qatzip", "qpl", "uadk"};
static const char *const sonames[VENDOR_COUNT] = {"libqatzip.so.3", "libqpl.so.1", "libwd_comp.so.2"};

/* Per-page outcome written into the caller's status array. */
enum page_status { PAGE_HW = 0, PAGE_LIBRARY_SW = 1, PAGE_NEEDS_SW = 2 };

/* QEMU's MAX_SUBMIT_RETRY_NUM: a busy IAA queue is tried this many more times, then software. */
#define QPL_SUBMIT_RETRIES 3

struct qz_api {
  qz_init_fn *init;
  qz_get_defaults_deflate_fn *get_defaults;
  qz_setup_session_deflate_fn *setup;
  qz_compress_fn *compress;
  qz_decompress_fn *decompress;
  qz_max_compressed_length_fn *max_compressed_length;
  qz_malloc_fn *malloc;
  qz_free_fn *free;
  qz_teardown_session_fn *teardown;
  qz_close_fn *close;
};

struct qpl_api {
  qpl_get_job_size_fn *get_job_size;
  qpl_init_job_fn *init_job;
  qpl_job_fn *submit_job;
  qpl_job_fn *wait_job;
  qpl_job_fn *fini_job;
  qpl_get_library_version_fn *get_library_version;
};

struct uadk_api {
  wd_comp_init2__fn *init2_;
  wd_comp_alloc_sess_fn *alloc_sess;
  wd_comp_free_sess_fn *free_sess;
  wd_do_comp_sync_fn *comp_sync;
};

/* One vendor library as loaded from one path, probed once; process-wide, never unloaded. */
struct library {
  struct library *next;
  enum vendor vendor;
  char *path; /* NULL: the soname */
  void *handle;
  int usable;    /* loaded with every symbol */
  int available; /* and the device answered */
  char reason[512];
  char detail[256];
  union {
    struct qz_api qz;
    struct qpl_api qpl;
    struct uadk_api uadk;
  } api;
};

static pthread_mutex_t libraries_lock = PTHREAD_MUTEX_INITIALIZER;
static struct library *libraries;

static void say(char *buffer, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));
static void say(char *buffer, size_t size, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(buffer, size, format, args);
  va_end(args);
}

/* Resolves `count` symbols named in `names` into `slots`; optional ones may stay NULL. */
static int resolve(struct library *lib, const char *const *names, void **slots, size_t count) {
  for (size_t i = 0; i < count; i++) {
    dlerror();
    slots[i] = dlsym(lib->handle, names[i]);
    if (slots[i] == NULL) {
      say(lib->reason, sizeof lib->reason, "symbol %s missing from %s", names[i], lib->path ? lib->path : sonames[lib->vendor]);
      return 0;
    }
  }
  return lib->usable = 1;
}

static void probe_qatzip(struct library *lib) {
  static const char *const names[] = {"qzInit", "qzGetDefaultsDeflate", "qzSetupSessionDeflate", "qzCompress", "qzDecompress",
                                      "qzMaxCompressedLength", "qzMalloc", "qzFree", "qzTeardownSession", "qzClose"};
  struct qz_api *qz = &lib->api.qz;
  _Static_assert(sizeof names / sizeof *names == sizeof *qz / sizeof(void *), "one name per QATzip function");
  if (!resolve(lib, names, (void **)qz, sizeof names / sizeof *names)) return;
  /* Without software backup a session only sets up when the device does. */
  QzSession_T session = {0};
  QzParamsRoom params;
  memset(&params, 0, sizeof params);
  int init = qz->init(&session, 0);
  int setup = qz->get_defaults(&params.p);
  if (setup == QZ_OK) {
    params.p.common_params.sw_backup = 0;
    setup = qz->setup(&session, &params.p);
  }
  lib->available = setup == QZ_OK && session.hw_session_stat == QZ_OK;
  if (setup == QZ_OK) qz->teardown(&session);
  qz->close(&session);
  void *pinned = qz->malloc(4096, QZ_AUTO_SELECT_NUMA_NODE, QZ_PINNED_MEM);
  if (pinned) qz->free(pinned);
  const char *memory = pinned ? "pinned memory available" : "no pinned memory (usdm driver or huge pages missing): buffers fall back to normal memory";
  if (lib->available) {
    say(lib->reason, sizeof lib->reason, "QAT device ready; %s", memory);
  } else {
    say(lib->reason, sizeof lib->reason,
        "no QAT device (qzInit %d, qzSetupSessionDeflate %d, hw_session_stat %ld): start qat_service with a [SHIM] section; %s",
        init, setup, session.hw_session_stat, memory);
  }
}

static void probe_qpl(struct library *lib) {
  static const char *const names[] = {"qpl_get_job_size", "qpl_init_job", "qpl_submit_job", "qpl_wait_job", "qpl_fini_job",
                                      "qpl_get_library_version"};
  struct qpl_api *qpl = &lib->api.qpl;
  _Static_assert(sizeof names / sizeof *names == sizeof *qpl / sizeof(void *), "one name per QPL function");
  if (!resolve(lib, names, (void **)qpl, sizeof names / sizeof *names)) return;
  say(lib->detail + strlen(lib->detail), sizeof lib->detail - strlen(lib->detail), ", QPL %s", qpl->get_library_version());
  uint32_t size = 0;
  int status = qpl->get_job_size(QPL_PATH_HARDWARE, &size);
  qpl_job *job = status == QPL_STS_OK ? calloc(1, size) : NULL;
  if (job) {
    status = qpl->init_job(QPL_PATH_HARDWARE, job);
    if (status == QPL_STS_OK) qpl->fini_job(job);
    free(job);
  } else if (status == QPL_STS_OK) {
    status = -ENOMEM;
  }
  lib->available = status == QPL_STS_OK;
  const char *why = status == QPL_STS_OK ? "IAA work queue ready"
                  : status == QPL_STS_INIT_HW_NOT_SUPPORTED ? "no IAA device"
                  : status == QPL_STS_INIT_LIBACCEL_NOT_FOUND ? "libaccel-config.so.1 not found (install accel-config)"
                  : status == QPL_STS_INIT_LIBACCEL_ERROR ? "libaccel-config failed"
                  : status == QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE ? "no usable IAA work queue: enable a shared wq with accel-config and give this user access to /dev/iax/wq*"
                  : "hardware job did not initialise";
  say(lib->reason, sizeof lib->reason, "%s (qpl_init_job on the hardware path: status %d)", why, status);
}

static void probe_uadk(struct library *lib) {
  static const char *const names[] = {"wd_comp_init2_", "wd_comp_alloc_sess", "wd_comp_free_sess", "wd_do_comp_sync"};
  struct uadk_api *uadk = &lib->api.uadk;
  _Static_assert(sizeof names / sizeof *names == sizeof *uadk / sizeof(void *), "one name per UADK function");
  if (!resolve(lib, names, (void **)uadk, sizeof names / sizeof *names)) return;
  /* Process-wide and kept: the sessions opened later need it (QEMU never uninits either). */
  int rc = uadk->init2_("zlib", SCHED_POLICY_RR, TASK_HW, NULL);
  if (rc != 0 && rc != -EEXIST) {
    say(lib->reason, sizeof lib->reason, "no UADK device: wd_comp_init2_(\"zlib\") returned %d (%s); needs a hisi_zip device with SVA and write access to /dev/hisi_zip-*",
        rc, strerror(-rc));
    return;
  }
  unsigned char setup_room[VENDOR_STRUCT_ROOM] = {0}, sched_room[VENDOR_STRUCT_ROOM] = {0};
  struct wd_comp_sess_setup *setup = (void *)setup_room;
  setup->alg_type = WD_ZLIB;
  setup->sched_param = sched_room;
  handle_t h = uadk->alloc_sess(setup);
  lib->available = h != 0;
  if (h) uadk->free_sess(h);
  say(lib->reason, sizeof lib->reason, h ? "UADK zlib device ready" : "wd_comp_alloc_sess failed: no session on the device");
}

/* The library for (vendor, path), loaded and probed on first use. */
static struct library *library_for(enum vendor vendor, const char *path) {
  pthread_mutex_lock(&libraries_lock);
  struct library *lib = libraries;
  while (lib && !(lib->vendor == vendor && (lib->path == path || (lib->path && path && strcmp(lib->path, path) == 0)))) lib = lib->next;
  if (lib == NULL && (lib = calloc(1, sizeof *lib)) != NULL) {
    lib->vendor = vendor;
    lib->path = path ? strdup(path) : NULL;
    const char *name = path ? path : sonames[vendor];
    say(lib->detail, sizeof lib->detail, "%s", name);
    lib->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (lib->handle == NULL) {
      say(lib->reason, sizeof lib->reason, "cannot load %s", dlerror()); /* dlerror names the file */
    } else if (vendor == QATZIP) {
      probe_qatzip(lib);
    } else if (vendor == QPL) {
      probe_qpl(lib);
    } else {
      probe_uadk(lib);
    }
    lib->next = libraries;
    libraries = lib;
  }
  pthread_mutex_unlock(&libraries_lock);
  return lib;
}

/* ---- argument plumbing ------------------------------------------------------------------ */

#define CHECK(call)                                                       \
  do {                                                                    \
    if ((call) != napi_ok) {                                              \
      napi_throw_error(env, "ERR_NATIVE_ARGUMENT", "multifd native: " #call " failed"); \
      return NULL;                                                        \
    }                                                                     \
  } while (0)

static int get_vendor(napi_env env, napi_value value, enum vendor *vendor) {
  char id[16];
  size_t length;
  if (napi_get_value_string_utf8(env, value, id, sizeof id, &length) != napi_ok) return 0;
  for (int v = 0; v < VENDOR_COUNT; v++) {
    if (strcmp(id, vendor_ids[v]) == 0) {
      *vendor = (enum vendor)v;
      return 1;
    }
  }
  return 0;
}

/* A string argument or null/undefined; *path is NULL for the latter. */
static int get_path(napi_env env, napi_value value, char *buffer, size_t size, const char **path) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok) return 0;
  *path = NULL;
  if (type == napi_null || type == napi_undefined) return 1;
  size_t length;
  if (napi_get_value_string_utf8(env, value, buffer, size, &length) != napi_ok || length + 1 >= size) return 0;
  *path = buffer;
  return 1;
}

static int get_bytes(napi_env env, napi_value value, void **data, size_t *length) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t offset;
  return napi_get_typedarray_info(env, value, &type, length, data, &buffer, &offset) == napi_ok && type == napi_uint8_array;
}

/* Pointers to the pages of a JS array of Uint8Arrays, each exactly page_size bytes. */
static int get_pages(napi_env env, napi_value array, uint8_t **pages, uint32_t max_pages, uint32_t page_size, uint32_t *count) {
  if (napi_get_array_length(env, array, count) != napi_ok || *count > max_pages) return 0;
  for (uint32_t i = 0; i < *count; i++) {
    napi_value page;
    size_t length;
    if (napi_get_element(env, array, i, &page) != napi_ok || !get_bytes(env, page, (void **)&pages[i], &length) || length != page_size) return 0;
  }
  return 1;
}

static int get_status(napi_env env, napi_value value, int32_t **status, uint32_t count) {
  napi_typedarray_type type;
  napi_value buffer;
  size_t length, offset;
  return napi_get_typedarray_info(env, value, &type, &length, (void **)status, &buffer, &offset) == napi_ok && type == napi_int32_array &&
         length >= count;
}

/* ---- sessions --------------------------------------------------------------------------- */

struct session {
  struct library *lib;
  int compress;
  uint32_t page_size, max_pages;
  uint8_t **pages; /* max_pages page pointers, refilled per call */
  uint8_t *in, *out;
  size_t in_cap, out_cap;
  int pinned; /* in/out came from qzMalloc */
  unsigned qz_threshold; /* QATzip sends inputs below this to its software path */
  QzSession_T qz;
  qpl_job **jobs; /* QPL: one hardware job per page slot, as QEMU */
  uint8_t *submitted;
  handle_t uadk;
  unsigned char sched_room[VENDOR_STRUCT_ROOM]; /* UADK's sched_params, for the session's life */
};

static void free_buffer(struct session *s, void *buffer) {
  if (s->pinned) s->lib->api.qz.free(buffer);
  else free(buffer);
}

static void close_session(struct session *s) {
  struct library *lib = s->lib;
  if (lib->vendor == QATZIP && s->qz.internal) {
    lib->api.qz.teardown(&s->qz);
    lib->api.qz.close(&s->qz);
  }
  if (s->jobs) {
    for (uint32_t i = 0; i < s->max_pages && s->jobs[i]; i++) {
      lib->api.qpl.fini_job(s->jobs[i]);
      free(s->jobs[i]);
    }
    free(s->jobs);
  }
  if (s->uadk) lib->api.uadk.free_sess(s->uadk);
  free_buffer(s, s->in);
  free_buffer(s, s->out);
  free(s->submitted);
  free(s->pages);
  free(s);
}

static void finalize_session(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  close_session(data);
}

/* QATzip buffers: pinned (DMA-able) memory first, normal memory when there is none, as QEMU. */
static int qz_buffers(struct session *s) {
  struct qz_api *qz = &s->lib->api.qz;
  s->pinned = 1;
  s->in = qz->malloc(s->in_cap, QZ_AUTO_SELECT_NUMA_NODE, QZ_PINNED_MEM);
  s->out = qz->malloc(s->out_cap, QZ_AUTO_SELECT_NUMA_NODE, QZ_PINNED_MEM);
  if (s->in && s->out) return 1;
  free_buffer(s, s->in);
  free_buffer(s, s->out);
  s->in = qz->malloc(s->in_cap, QZ_AUTO_SELECT_NUMA_NODE, QZ_COMMON_MEM);
  s->out = qz->malloc(s->out_cap, QZ_AUTO_SELECT_NUMA_NODE, QZ_COMMON_MEM);
  return s->in && s->out;
}

/* Sets up the vendor side; returns NULL or a message (with *code) saying why not. */
static const char *setup_session(struct session *s, unsigned level, int require_hw, const char **code, char *message, size_t size) {
  struct library *lib = s->lib;
  size_t packet = (size_t)s->page_size * s->max_pages;
  *code = "ERR_CODEC_HW_UNAVAILABLE";
  if (lib->vendor == QATZIP) {
    struct qz_api *qz = &lib->api.qz;
    QzParamsRoom params;
    memset(&params, 0, sizeof params);
    int rc = qz->init(&s->qz, require_hw ? 0 : 1);
    if (rc != QZ_OK && rc != QZ_DUPLICATE) return say(message, size, "qzInit returned %d", rc), message;
    if ((rc = qz->get_defaults(&params.p)) != QZ_OK) return say(message, size, "qzGetDefaultsDeflate returned %d", rc), message;
    params.p.common_params.comp_lvl = level;
    params.p.common_params.sw_backup = require_hw ? 0 : 1;
    rc = qz->setup(&s->qz, &params.p);
    if (rc != QZ_OK && rc != QZ_DUPLICATE) return say(message, size, "qzSetupSessionDeflate returned %d (%s)", rc, lib->reason), message;
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
  s->submitted = calloc(s->max_pages, 1);
  if (!s->in || !s->out || !s->submitted) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate page buffers"), message;
  if (lib->vendor == QPL) {
    struct qpl_api *qpl = &lib->api.qpl;
    uint32_t job_size = 0;
    int rc = qpl->get_job_size(QPL_PATH_HARDWARE, &job_size);
    if (rc != QPL_STS_OK) return say(message, size, "qpl_get_job_size returned %d", rc), message;
    if ((s->jobs = calloc(s->max_pages, sizeof *s->jobs)) == NULL) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate QPL jobs"), message;
    for (uint32_t i = 0; i < s->max_pages; i++) {
      if ((s->jobs[i] = calloc(1, job_size)) == NULL) return *code = "ERR_CODEC_NOMEM", say(message, size, "cannot allocate a QPL job"), message;
      if ((rc = qpl->init_job(QPL_PATH_HARDWARE, s->jobs[i])) != QPL_STS_OK) {
        free(s->jobs[i]);
        s->jobs[i] = NULL;
        return say(message, size, "qpl_init_job on the hardware path returned %d", rc), message;
      }
    }
    return NULL;
  }
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

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7], result;
  char path_buffer[4096];
  const char *path;
  enum vendor vendor;
  bool compress, require_hw;
  uint32_t level, page_size, max_pages;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7 || !get_vendor(env, argv[0], &vendor) || !get_path(env, argv[1], path_buffer, sizeof path_buffer, &path) ||
      napi_get_value_bool(env, argv[2], &compress) != napi_ok || napi_get_value_uint32(env, argv[3], &level) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &page_size) != napi_ok || napi_get_value_uint32(env, argv[5], &max_pages) != napi_ok ||
      napi_get_value_bool(env, argv[6], &require_hw) != napi_ok || page_size == 0 || max_pages == 0) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", "open(vendor, path, compress, level, pageSize, maxPages, requireHardware)");
    return NULL;
  }
  struct library *lib = library_for(vendor, path);
  if (lib == NULL) {
    napi_throw_error(env, "ERR_CODEC_NOMEM", "multifd native: out of memory");
    return NULL;
  }
  if (!lib->usable) {
    napi_throw_error(env, "ERR_CODEC_HW_UNAVAILABLE", lib->reason);
    return NULL;
  }
  struct session *s = calloc(1, sizeof *s);
  if (s) s->pages = calloc(max_pages, sizeof *s->pages);
  if (s == NULL || s->pages == NULL) {
    free(s);
    napi_throw_error(env, "ERR_CODEC_NOMEM", "multifd native: out of memory");
    return NULL;
  }
  s->lib = lib;
  s->compress = compress;
  s->page_size = page_size;
  s->max_pages = max_pages;
  const char *code;
  char message[768];
  const char *failure = setup_session(s, level, require_hw, &code, message, sizeof message);
  if (failure) {
    close_session(s);
    napi_throw_error(env, code, failure);
    return NULL;
  }
  CHECK(napi_create_external(env, s, finalize_session, NULL, &result));
  return result;
}

/* ---- encode ----------------------------------------------------------------------------- */

static int32_t encode_qatzip(struct session *s, uint32_t count, int32_t *status) {
  struct qz_api *qz = &s->lib->api.qz;
  unsigned n = count * s->page_size, src_len = n, dest_len = (unsigned)s->out_cap;
  for (uint32_t i = 0; i < count; i++) memcpy(s->in + (size_t)i * s->page_size, s->pages[i], s->page_size);
  int rc = qz->compress(&s->qz, s->in, &src_len, s->out, &dest_len, 1);
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
    /* All pages go to the device first and are waited for after, so the engines work in parallel. */
    for (uint32_t i = 0; i < count; i++) {
      qpl_job *job = s->jobs[i];
      job->next_in_ptr = s->in + (size_t)i * ps;
      job->available_in = ps;
      job->next_out_ptr = s->out + (size_t)i * ps;
      job->available_out = ps - 1; /* output that does not shrink fails and goes raw */
      job->op = QPL_OP_COMPRESS;
      job->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_OMIT_VERIFY;
      job->level = QPL_LEVEL_1;
      s->submitted[i] = qpl_submit(&lib->api.qpl, job) == QPL_STS_OK;
    }
    for (uint32_t i = 0; i < count; i++) {
      int rc = s->submitted[i] ? lib->api.qpl.wait_job(s->jobs[i]) : QPL_STS_QUEUES_ARE_BUSY_ERR;
      status[i] = rc == QPL_STS_OK || rc == QPL_STS_MORE_OUTPUT_NEEDED ? PAGE_HW : PAGE_NEEDS_SW;
      lengths[i] = rc == QPL_STS_OK ? s->jobs[i]->total_out : ps;
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

static napi_value js_encode(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], result;
  struct session *s;
  uint8_t *out;
  size_t out_len;
  uint32_t count;
  int32_t *status;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4 || napi_get_value_external(env, argv[0], (void **)&s) != napi_ok || !s->compress ||
      !get_pages(env, argv[1], s->pages, s->max_pages, s->page_size, &count) || !get_bytes(env, argv[2], (void **)&out, &out_len) ||
      !get_status(env, argv[3], &status, count)) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", "encode(compressSession, pages, out: Uint8Array, status: Int32Array)");
    return NULL;
  }
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
  CHECK(napi_create_int64(env, written, &result));
  return result;
}

/* ---- decode ----------------------------------------------------------------------------- */

static int decode_qatzip(struct session *s, const uint8_t *payload, size_t length, uint32_t count, int32_t *status) {
  if (length > s->in_cap) return 2;
  unsigned src_len = (unsigned)length, dest_len = count * s->page_size;
  memcpy(s->in, payload, length);
  int rc = s->lib->api.qz.decompress(&s->qz, s->in, &src_len, s->out, &dest_len);
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
  for (uint32_t i = 0; i < count; i++) {
    uint32_t n = load_be32(payload + 4 * i);
    uint8_t *slot = s->out + (size_t)i * ps;
    s->submitted[i] = 0;
    status[i] = PAGE_HW;
    if (n == ps) {
      memcpy(slot, src, ps);
    } else if (lib->vendor == QPL) {
      qpl_job *job = s->jobs[i];
      job->next_in_ptr = (uint8_t *)src;
      job->available_in = n;
      job->next_out_ptr = slot;
      job->available_out = ps;
      job->op = QPL_OP_DECOMPRESS;
      job->flags = QPL_FLAG_FIRST | QPL_FLAG_LAST | QPL_FLAG_OMIT_VERIFY;
      s->submitted[i] = 1;
      if (qpl_submit(&lib->api.qpl, job) != QPL_STS_OK) s->submitted[i] = 0, status[i] = PAGE_NEEDS_SW;
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
  int needs_sw = 0;
  for (uint32_t i = 0; i < count; i++) {
    /* Any device decode error is retried in software: IAA rejects some valid streams (intel/qpl#21). */
    if (s->submitted[i] && (lib->api.qpl.wait_job(s->jobs[i]) != QPL_STS_OK || s->jobs[i]->total_out != ps)) status[i] = PAGE_NEEDS_SW;
    needs_sw |= status[i] == PAGE_NEEDS_SW;
  }
  return needs_sw;
}

static void apply_pages(struct session *s, uint32_t count, const int32_t *status) {
  for (uint32_t i = 0; i < count; i++) {
    if (status[i] != PAGE_NEEDS_SW) memcpy(s->pages[i], s->out + (size_t)i * s->page_size, s->page_size);
  }
}

/* Reads (session, payload-or-pages, pages, status) for decode and apply. */
static struct session *decode_args(napi_env env, napi_callback_info info, uint8_t **payload, size_t *length, uint32_t *count, int32_t **status) {
  size_t argc = 4;
  napi_value argv[4];
  struct session *s;
  int with_payload = payload != NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (size_t)(3 + with_payload) ||
      napi_get_value_external(env, argv[0], (void **)&s) != napi_ok || s->compress ||
      (with_payload && !get_bytes(env, argv[1], (void **)payload, length)) ||
      !get_pages(env, argv[1 + with_payload], s->pages, s->max_pages, s->page_size, count) || !get_status(env, argv[2 + with_payload], status, *count)) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", with_payload ? "decode(decompressSession, payload, pages, status)" : "apply(decompressSession, pages, status)");
    return NULL;
  }
  return s;
}

static napi_value js_decode(napi_env env, napi_callback_info info) {
  uint8_t *payload;
  size_t length;
  uint32_t count;
  int32_t *status;
  napi_value result;
  struct session *s = decode_args(env, info, &payload, &length, &count, &status);
  if (s == NULL) return NULL;
  int outcome = s->lib->vendor == QATZIP ? decode_qatzip(s, payload, length, count, status) : decode_pages(s, payload, length, count, status);
  if (outcome == 0) apply_pages(s, count, status);
  CHECK(napi_create_int32(env, outcome, &result));
  return result;
}

static napi_value js_apply(napi_env env, napi_callback_info info) {
  uint32_t count;
  int32_t *status;
  struct session *s = decode_args(env, info, NULL, NULL, &count, &status);
  if (s) apply_pages(s, count, status);
  return NULL;
}

/* ---- probe ------------------------------------------------------------------------------ */

static napi_value js_probe(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result, loaded, available, reason, detail;
  char path_buffer[4096];
  const char *path;
  enum vendor vendor;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  CHECK(napi_create_object(env, &result));
  struct library *lib = NULL;
  const char *why = "probe(vendor, path): vendor must be qatzip, qpl or uadk";
  if (argc >= 2 && get_vendor(env, argv[0], &vendor) && get_path(env, argv[1], path_buffer, sizeof path_buffer, &path)) {
    lib = library_for(vendor, path);
    why = lib ? lib->reason : "out of memory";
  }
  CHECK(napi_get_boolean(env, lib && lib->usable, &loaded));
  CHECK(napi_get_boolean(env, lib && lib->available, &available));
  CHECK(napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &reason));
  CHECK(napi_create_string_utf8(env, lib ? lib->detail : "", NAPI_AUTO_LENGTH, &detail));
  CHECK(napi_set_named_property(env, result, "loaded", loaded));
  CHECK(napi_set_named_property(env, result, "available", available));
  CHECK(napi_set_named_property(env, result, "reason", reason));
  CHECK(napi_set_named_property(env, result, "detail", detail));
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
      {"probe", NULL, js_probe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"encode", NULL, js_encode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decode", NULL, js_decode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"apply", NULL, js_apply, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof *functions, functions) != napi_ok) return NULL;
  return exports;
}

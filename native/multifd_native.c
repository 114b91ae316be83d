/*
 * multifd's hardware compression shim: a plain-C Node-API addon that dlopens QATzip
 * (libqatzip.so.3), QPL (libqpl.so.1) or UADK (libwd_comp.so.2) on first use and runs one
 * packet's pages through the device. It links nothing but libc: every vendor function is
 * looked up with dlsym against our own prototypes (vendor-abi.h; loading in library.c, the
 * vendor calls in session.c, the JavaScript arguments here).
 *
 * JavaScript side: src/native/addon.ts. The calls are synchronous and meant for pool worker
 * threads, one session per worker and direction (the vendors' sessions, jobs and handles are
 * not reentrant). Software fallbacks live in JavaScript (the WASM codecs): the shim only
 * reports, per page, whether the device did the work or the page needs software.
 *
 *   probe(vendor, path|null)            -> {loaded, available, device, reason, detail, file, version}; never throws
 *   open(vendor, path|null, compress, level, pageSize, maxPages, requireHw[, librarySoftware]) -> session
 *   encode(session, pages, out, status) -> payload bytes, or -1 when `out` is too small
 *   decode(session, payload, pages, status) -> 0 applied | 1 pages need software | 2 software decides
 *   apply(session, pages, status)       -> copies the pages the device decoded (after 1)
 *   close(session)                      -> frees the vendor session now, not when it is collected
 *   adviseHugePages(bytes)              -> true when the kernel took MADV_HUGEPAGE for the view's pages
 *
 * adviseHugePages is the one call that is not about a vendor: guest memory (src/memory) asks for
 * transparent huge pages the way QEMU does for its RAM blocks, because a first touch of 4 KiB
 * pages costs this kind of machine 3-4 s/GiB against 0.5 s/GiB in 2 MiB pages (docs/data-path.md).
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "session.h"

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

static void finalize_session(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  close_session(data);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 8;
  napi_value argv[8], result;
  char path_buffer[4096];
  const char *path;
  enum vendor vendor;
  bool compress, require_hw, library_software = false;
  uint32_t level, page_size, max_pages;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 7 || !get_vendor(env, argv[0], &vendor) || !get_path(env, argv[1], path_buffer, sizeof path_buffer, &path) ||
      napi_get_value_bool(env, argv[2], &compress) != napi_ok || napi_get_value_uint32(env, argv[3], &level) != napi_ok ||
      napi_get_value_uint32(env, argv[4], &page_size) != napi_ok || napi_get_value_uint32(env, argv[5], &max_pages) != napi_ok ||
      napi_get_value_bool(env, argv[6], &require_hw) != napi_ok || page_size == 0 || max_pages == 0 ||
      (argc > 7 && napi_get_value_bool(env, argv[7], &library_software) != napi_ok)) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", "open(vendor, path, compress, level, pageSize, maxPages, requireHardware, librarySoftware?)");
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
  const char *failure = open_session(s, level, require_hw, library_software, &code, message, sizeof message);
  if (failure) {
    close_session(s);
    napi_throw_error(env, code, failure);
    return NULL;
  }
  CHECK(napi_create_external(env, s, finalize_session, NULL, &result));
  return result;
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
  if (argc < 4 || napi_get_value_external(env, argv[0], (void **)&s) != napi_ok || s->released || !s->compress ||
      !get_pages(env, argv[1], s->pages, s->max_pages, s->page_size, &count) || !get_bytes(env, argv[2], (void **)&out, &out_len) ||
      !get_status(env, argv[3], &status, count)) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", "encode(compressSession, pages, out: Uint8Array, status: Int32Array)");
    return NULL;
  }
  int64_t written = session_encode(s, count, status, out, out_len);
  CHECK(napi_create_int64(env, written, &result));
  return result;
}

/* Reads (session, payload-or-pages, pages, status) for decode and apply. */
static struct session *decode_args(napi_env env, napi_callback_info info, uint8_t **payload, size_t *length, uint32_t *count, int32_t **status) {
  size_t argc = 4;
  napi_value argv[4];
  struct session *s;
  int with_payload = payload != NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < (size_t)(3 + with_payload) ||
      napi_get_value_external(env, argv[0], (void **)&s) != napi_ok || s->released || s->compress ||
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
  int outcome = session_decode(s, payload, length, count, status);
  CHECK(napi_create_int32(env, outcome, &result));
  return result;
}

static napi_value js_apply(napi_env env, napi_callback_info info) {
  uint32_t count;
  int32_t *status;
  struct session *s = decode_args(env, info, NULL, NULL, &count, &status);
  if (s) session_apply(s, count, status);
  return NULL;
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  struct session *s;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_external(env, argv[0], (void **)&s) != napi_ok) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", "close(session)");
    return NULL;
  }
  release_session(s);
  return NULL;
}

/* ---- probe ------------------------------------------------------------------------------ */

static napi_value js_probe(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result, loaded, available, device, reason, detail, file, version;
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
  CHECK(napi_get_boolean(env, lib && lib->device, &device));
  CHECK(napi_create_string_utf8(env, why, NAPI_AUTO_LENGTH, &reason));
  CHECK(napi_create_string_utf8(env, lib ? lib->detail : "", NAPI_AUTO_LENGTH, &detail));
  CHECK(napi_create_string_utf8(env, lib ? lib->file : "", NAPI_AUTO_LENGTH, &file));
  CHECK(napi_create_string_utf8(env, lib ? lib->version : "", NAPI_AUTO_LENGTH, &version));
  CHECK(napi_set_named_property(env, result, "loaded", loaded));
  CHECK(napi_set_named_property(env, result, "available", available));
  CHECK(napi_set_named_property(env, result, "device", device));
  CHECK(napi_set_named_property(env, result, "reason", reason));
  CHECK(napi_set_named_property(env, result, "detail", detail));
  CHECK(napi_set_named_property(env, result, "file", file));
  CHECK(napi_set_named_property(env, result, "version", version));
  return result;
}

/* ---- memory advice ---------------------------------------------------------------------- */

static napi_value js_advise_huge_pages(napi_env env, napi_callback_info info) {
  size_t argc = 1, length;
  napi_value argv[1], result;
  napi_typedarray_type type;
  void *data;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, "ERR_NATIVE_ARGUMENT", "adviseHugePages(bytes: Uint8Array)");
    return NULL;
  }
  int advised = 0;
#ifdef MADV_HUGEPAGE
  /* madvise takes whole pages: the ones wholly inside the view. */
  uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  uintptr_t start = ((uintptr_t)data + page - 1) & ~(page - 1);
  uintptr_t end = ((uintptr_t)data + length) & ~(page - 1);
  advised = end > start && madvise((void *)start, end - start, MADV_HUGEPAGE) == 0;
#endif
  CHECK(napi_get_boolean(env, advised, &result));
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor functions[] = {
      {"probe", NULL, js_probe, NULL, NULL, NULL, napi_enumerable, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
      {"encode", NULL, js_encode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"decode", NULL, js_decode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"apply", NULL, js_apply, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adviseHugePages", NULL, js_advise_huge_pages, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof *functions, functions) != napi_ok) return NULL;
  return exports;
}

/*
 * The vendor libraries as the shim sees them: loaded with dlopen from a path or the soname,
 * every function it calls resolved with dlsym, and probed once, process-wide, never unloaded.
 */
#ifndef MULTIFD_LIBRARY_H
#define MULTIFD_LIBRARY_H

#include <stddef.h>

#include "vendor-abi.h"

enum vendor { QATZIP, QPL, UADK, VENDOR_COUNT };
/* The vendors' names as the codecs have them, and the sonames loaded when no path is given. */
extern const char *const vendor_ids[VENDOR_COUNT];
extern const char *const sonames[VENDOR_COUNT];


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

/* The library for (vendor, path; NULL for the soname), loaded and probed on first use; NULL without memory. */
struct library *library_for(enum vendor vendor, const char *path);

/* snprintf into a fixed buffer (truncating). */
void say(char *buffer, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));

#endif

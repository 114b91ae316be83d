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

/* The QPL path our sessions use, from MULTIFD_QPL_PATH (read when a library is looked up). */
enum qpl_mode { QPL_MODE_AUTO, QPL_MODE_HARDWARE, QPL_MODE_SOFTWARE, QPL_MODE_INVALID };
extern const char *const qpl_mode_names[QPL_MODE_INVALID];

/* One vendor library as loaded from one path (and, for QPL, one mode), probed once; process-wide, never unloaded. */
struct library {
  struct library *next;
  enum vendor vendor;
  char *path; /* NULL: the soname */
  enum qpl_mode qpl_mode;
  void *handle;
  int usable;    /* loaded with every symbol */
  int available; /* and the device answered, or (QPL_MODE_SOFTWARE) libqpl's software path works */
  int device;    /* a device answered (whether or not the sessions use it) */
  int qz_numa;   /* the NUMA node given to qzMalloc: QZ_AUTO_SELECT_NUMA_NODE from QATzip 1.3.0 on, else 0 */
  qz_set_log_level_fn *qz_set_log_level; /* QATzip's qzSetLogLevel when it has one (1.2.0 on) */
  char reason[512];
  char file[256];    /* the file the loader resolved (symlinks followed), else the path or soname asked for */
  char version[64];  /* the library's version when it says (QPL), else the file name's (libwd_comp.so.2.10.0: 2.10.0) */
  char detail[384];  /* file and version in words */
  union {
    struct qz_api qz;
    struct qpl_api qpl;
    struct uadk_api uadk;
  } api;
};

/*
 * The library for (vendor, path; NULL for the soname) and, for QPL, the current MULTIFD_QPL_PATH,
 * loaded and probed on first use; NULL without memory.
 */
struct library *library_for(enum vendor vendor, const char *path);

/* snprintf into a fixed buffer (truncating). */
void say(char *buffer, size_t size, const char *format, ...) __attribute__((format(printf, 3, 4)));

#endif

/*
 * Loading and probing the vendor libraries (library.h). A probe never fails loudly: whatever
 * goes wrong (file absent, symbol missing, no device, no permission, no work queue, no pinned
 * memory) becomes the library's `reason`, in words a user can act on.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "library.h"

const char *const vendor_ids[VENDOR_COUNT] = {"qatzip", "qpl", "uadk"};
const char *const sonames[VENDOR_COUNT] = {"libqatzip.so.3", "libqpl.so.1", "libwd_comp.so.2"};

static pthread_mutex_t libraries_lock = PTHREAD_MUTEX_INITIALIZER;
static struct library *libraries;

void say(char *buffer, size_t size, const char *format, ...) {
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

struct library *library_for(enum vendor vendor, const char *path) {
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

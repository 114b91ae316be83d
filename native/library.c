/*
 * Loading and probing the vendor libraries (library.h). A probe never fails loudly: whatever
 * goes wrong (file absent, symbol missing, no device, no permission, no work queue, no pinned
 * memory) becomes the library's `reason`, in words a user can act on.
 */
#define _GNU_SOURCE /* dlinfo */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "library.h"

const char *const vendor_ids[VENDOR_COUNT] = {"qatzip", "qpl", "uadk"};
const char *const sonames[VENDOR_COUNT] = {"libqatzip.so.3", "libqpl.so.1", "libwd_comp.so.2"};
const char *const qpl_mode_names[QPL_MODE_INVALID] = {"auto", "hardware", "software"};

static pthread_mutex_t libraries_lock = PTHREAD_MUTEX_INITIALIZER;
static struct library *libraries;

void say(char *buffer, size_t size, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(buffer, size, format, args);
  va_end(args);
}

/* say() after what the buffer holds. */
static void __attribute__((format(printf, 3, 4))) append(char *buffer, size_t size, const char *format, ...) {
  size_t used = strlen(buffer);
  va_list args;
  va_start(args, format);
  vsnprintf(buffer + used, size - used, format, args);
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
  /* The probe's own no-device lines on stderr are said in the reason: QATzip stays quiet meanwhile. */
  qz_set_log_level_fn *set_log_level = lib->qz_set_log_level = (qz_set_log_level_fn *)dlsym(lib->handle, "qzSetLogLevel");
  int log_level = set_log_level ? set_log_level(QZ_LOG_NONE) : QZ_LOG_NONE;
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
  lib->device = lib->available = setup == QZ_OK && session.hw_session_stat == QZ_OK;
  if (setup == QZ_OK) qz->teardown(&session);
  qz->close(&session);
  if (set_log_level) set_log_level(log_level);
  /* QATzip exports no release number; its asynchronous API tells 1.3.0 and later apart. */
  int since_1_3 = dlsym(lib->handle, QZ_SINCE_1_3_SYMBOL) != NULL;
  lib->qz_numa = since_1_3 ? QZ_AUTO_SELECT_NUMA_NODE : 0;
  if (since_1_3) append(lib->detail, sizeof lib->detail, ", QATzip 1.3.0 or later (%s)", QZ_SINCE_1_3_SYMBOL);
  if (!lib->available) {
    say(lib->reason, sizeof lib->reason, "no QAT device (qzInit %d, qzSetupSessionDeflate %d, hw_session_stat %ld): start qat_service with a [SHIM] section",
        init, setup, session.hw_session_stat);
    return;
  }
  void *pinned = qz->malloc(4096, lib->qz_numa, QZ_PINNED_MEM);
  if (pinned) qz->free(pinned);
  say(lib->reason, sizeof lib->reason, "QAT device ready; %s",
      pinned ? "pinned memory available" : "no pinned memory (usdm driver or huge pages missing): buffers fall back to normal memory");
}

/* Initialises (and finishes) one job on `path`: the status of qpl_init_job, or -ENOMEM. */
static int try_qpl_job(struct qpl_api *qpl, int path) {
  uint32_t size = 0;
  int status = qpl->get_job_size(path, &size);
  if (status != QPL_STS_OK) return status;
  qpl_job *job = calloc(1, size);
  if (job == NULL) return -ENOMEM;
  status = qpl->init_job(path, job);
  if (status == QPL_STS_OK) qpl->fini_job(job);
  free(job);
  return status;
}

static void probe_qpl(struct library *lib) {
  static const char *const names[] = {"qpl_get_job_size", "qpl_init_job", "qpl_submit_job", "qpl_wait_job", "qpl_fini_job",
                                      "qpl_get_library_version"};
  struct qpl_api *qpl = &lib->api.qpl;
  _Static_assert(sizeof names / sizeof *names == sizeof *qpl / sizeof(void *), "one name per QPL function");
  if (!resolve(lib, names, (void **)qpl, sizeof names / sizeof *names)) return;
  say(lib->version, sizeof lib->version, "%s", qpl->get_library_version());
  append(lib->detail, sizeof lib->detail, ", QPL %s", lib->version);
  /* The hardware path is probed in every mode: it says why no device is used. */
  int status = try_qpl_job(qpl, QPL_PATH_HARDWARE);
  const char *why = status == QPL_STS_OK ? "IAA work queue ready"
                  : status == QPL_STS_INIT_HW_NOT_SUPPORTED ? "no IAA device"
                  : status == QPL_STS_INIT_LIBACCEL_NOT_FOUND ? "libaccel-config.so.1 not found (install accel-config)"
                  : status == QPL_STS_INIT_LIBACCEL_ERROR ? "libaccel-config failed"
                  : status == QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE ? "no usable IAA work queue: enable a shared wq with accel-config and give this user access to /dev/iax/wq*"
                  : "hardware job did not initialise";
  /* Without the idxd driver's device folder, no accel-config set-up can help: say so first. */
  const char *device = status != QPL_STS_OK && status != QPL_STS_INIT_HW_NOT_SUPPORTED && access("/dev/iax", F_OK) != 0 ? "no IAA device (no /dev/iax); " : "";
  lib->device = status == QPL_STS_OK;
  char hardware[320];
  say(hardware, sizeof hardware, "%s%s (qpl_init_job on the hardware path: status %d)", device, why, status);
  if (lib->qpl_mode != QPL_MODE_SOFTWARE) {
    lib->available = status == QPL_STS_OK;
    say(lib->reason, sizeof lib->reason, "%s", hardware);
    return;
  }
  int software = try_qpl_job(qpl, QPL_PATH_SOFTWARE);
  lib->available = software == QPL_STS_OK;
  if (lib->available) say(lib->reason, sizeof lib->reason, "libqpl's software path, as MULTIFD_QPL_PATH=software asks (the hardware path: %s)", hardware);
  else say(lib->reason, sizeof lib->reason, "qpl_init_job on the software path (MULTIFD_QPL_PATH=software): status %d", software);
}

static void probe_uadk(struct library *lib) {
  static const char *const names[] = {"wd_comp_init2_", "wd_comp_alloc_sess", "wd_comp_free_sess", "wd_do_comp_sync"};
  struct uadk_api *uadk = &lib->api.uadk;
  _Static_assert(sizeof names / sizeof *names == sizeof *uadk / sizeof(void *), "one name per UADK function");
  if (!resolve(lib, names, (void **)uadk, sizeof names / sizeof *names)) return;
  /* Process-wide and kept: the sessions opened later need it (QEMU never uninits either). */
  int rc = uadk->init2_("zlib", SCHED_POLICY_RR, TASK_HW, NULL);
  if (rc != 0 && rc != -EEXIST) {
    /* UADK finds its devices in /sys/class/uacce; without it every init fails, with -EINVAL. */
    const char *uacce = access("/sys/class/uacce", F_OK) != 0 ? " (no /sys/class/uacce: the kernel has no UACCE device)" : "";
    say(lib->reason, sizeof lib->reason,
        "no UADK device%s: wd_comp_init2_(\"zlib\") returned %d (%s); needs a hisi_zip device with SVA and write access to /dev/hisi_zip-*",
        uacce, rc, strerror(-rc));
    return;
  }
  unsigned char setup_room[VENDOR_STRUCT_ROOM] = {0}, sched_room[VENDOR_STRUCT_ROOM] = {0};
  struct wd_comp_sess_setup *setup = (void *)setup_room;
  setup->alg_type = WD_ZLIB;
  setup->sched_param = sched_room;
  handle_t h = uadk->alloc_sess(setup);
  lib->device = lib->available = h != 0;
  if (h) uadk->free_sess(h);
  say(lib->reason, sizeof lib->reason, h ? "UADK zlib device ready" : "wd_comp_alloc_sess failed: no session on the device");
}

/* MULTIFD_QPL_PATH as a mode; unset or empty is auto. */
static enum qpl_mode qpl_mode_from_environment(void) {
  const char *value = getenv("MULTIFD_QPL_PATH");
  if (value == NULL || *value == '\0') return QPL_MODE_AUTO;
  for (int m = 0; m < QPL_MODE_INVALID; m++) {
    if (strcmp(value, qpl_mode_names[m]) == 0) return (enum qpl_mode)m;
  }
  return QPL_MODE_INVALID;
}

/*
 * The file the loader resolved for the library (symlinks followed) and, when the library does
 * not report a version, the version in that file's name (libwd_comp.so.2.10.0: 2.10.0).
 */
static void describe_file(struct library *lib, const char *name) {
  struct link_map *map = NULL;
  char resolved[PATH_MAX];
  const char *file = name;
  if (dlinfo(lib->handle, RTLD_DI_LINKMAP, &map) == 0 && map && map->l_name && *map->l_name) file = map->l_name;
  if (realpath(file, resolved)) file = resolved;
  say(lib->file, sizeof lib->file, "%s", file);
  const char *slash = strrchr(lib->file, '/'), *so = strstr(slash ? slash : lib->file, ".so.");
  if (lib->vendor != QPL && so) say(lib->version, sizeof lib->version, "%s", so + 4);
  say(lib->detail, sizeof lib->detail, "%s", lib->file);
  if (lib->version[0]) append(lib->detail, sizeof lib->detail, ", file version %s", lib->version);
}

struct library *library_for(enum vendor vendor, const char *path) {
  enum qpl_mode mode = vendor == QPL ? qpl_mode_from_environment() : QPL_MODE_AUTO;
  pthread_mutex_lock(&libraries_lock);
  struct library *lib = libraries;
  while (lib && !(lib->vendor == vendor && lib->qpl_mode == mode && (lib->path == path || (lib->path && path && strcmp(lib->path, path) == 0)))) lib = lib->next;
  if (lib == NULL && (lib = calloc(1, sizeof *lib)) != NULL) {
    lib->vendor = vendor;
    lib->qpl_mode = mode;
    lib->path = path ? strdup(path) : NULL;
    const char *name = path ? path : sonames[vendor];
    say(lib->file, sizeof lib->file, "%s", name);
    say(lib->detail, sizeof lib->detail, "%s", name);
    if (mode == QPL_MODE_INVALID) {
      say(lib->reason, sizeof lib->reason, "MULTIFD_QPL_PATH must be auto, hardware or software, not \"%s\"", getenv("MULTIFD_QPL_PATH"));
    } else if ((lib->handle = dlopen(name, RTLD_NOW | RTLD_LOCAL)) == NULL) {
      say(lib->reason, sizeof lib->reason, "cannot load %s", dlerror()); /* dlerror names the file */
    } else {
      describe_file(lib, name);
      if (vendor == QATZIP) probe_qatzip(lib);
      else if (vendor == QPL) probe_qpl(lib);
      else probe_uadk(lib);
    }
    lib->next = libraries;
    libraries = lib;
  }
  pthread_mutex_unlock(&libraries_lock);
  return lib;
}

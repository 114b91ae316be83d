/*
 * One vendor session (one per worker thread and direction) and the work it does on a packet's
 * pages. Nothing here knows about JavaScript: multifd_native.c converts the arguments.
 */
#ifndef MULTIFD_SESSION_H
#define MULTIFD_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "library.h"

/* Per-page outcome written into the caller's status array. */
enum page_status { PAGE_HW = 0, PAGE_LIBRARY_SW = 1, PAGE_NEEDS_SW = 2 };

/* QEMU's MAX_SUBMIT_RETRY_NUM: a busy IAA queue is tried this many more times, then software. */
#define QPL_SUBMIT_RETRIES 3
/* QEMU's jobs per channel (a 512 KiB packet of 4 KiB pages): at most this many pages in flight. */
#define QPL_MAX_JOBS 128

struct session {
  struct library *lib;
  int compress;
  uint32_t page_size, max_pages;
  uint8_t **pages; /* max_pages page pointers, refilled per call */
  uint8_t *in, *out;
  size_t in_cap, out_cap;
  int pinned; /* in/out came from qzMalloc */
  unsigned qz_threshold; /* QATzip sends inputs below this to its software path */
  int qz_quiet; /* a software-backup session without a device: its calls run with QATzip's log off */
  QzSession_T qz;
  qpl_job **jobs; /* QPL: up to QPL_MAX_JOBS hardware jobs, or one software job (run at submission) */
  uint32_t job_count;
  int32_t page_done; /* a page's status when the session did it: PAGE_HW, or PAGE_LIBRARY_SW on libqpl's software path */
  int *submit_rc; /* per page: what qpl_submit_job returned (on the software path, the job's result) */
  handle_t uadk;
  unsigned char sched_room[VENDOR_STRUCT_ROOM]; /* UADK's sched_params, for the session's life */
  int released; /* release_session ran: the vendor side is gone, only the struct remains */
};

/*
 * Sets up the vendor side of a calloc'ed session whose lib, compress, page_size, max_pages and
 * pages are filled in; returns NULL, or a message in `message` with an error code in *code.
 * Without a device a QATzip session opens only with `library_software` (its own software
 * backup, for tests: each call then repeats QATzip's init and leaks a pthread key).
 */
const char *open_session(struct session *s, unsigned level, int require_hw, int library_software, const char **code, char *message, size_t size);

/* Frees the vendor side of a session and its buffers (once; later calls do nothing). */
void release_session(struct session *s);

/* Frees everything a session holds, and the session. */
void close_session(struct session *s);

/* Compresses s->pages[0..count) into out: the payload's length, or -1 when out_len is too small. */
int64_t session_encode(struct session *s, uint32_t count, int32_t *status, uint8_t *out, size_t out_len);

/* Decompresses a payload into s->pages[0..count): 0 applied, 1 pages need software (nothing written), 2 software decides. */
int session_decode(struct session *s, const uint8_t *payload, size_t length, uint32_t count, int32_t *status);

/* Writes the pages the device decoded (status not PAGE_NEEDS_SW) after session_decode returned 1. */
void session_apply(struct session *s, uint32_t count, const int32_t *status);

#endif

/*
 * Our own description of the few vendor functions, structs and constants the shim calls
 * (and the test fakes implement), written from the facts in the accelerator notes: QATzip
 * API 2.x (libqatzip.so.3), QPL 1.x (libqpl.so.1), UADK 2.x (libwd_comp.so.2). No vendor
 * header is used at build time. Structs the library reads or fills are declared only as far
 * as we touch them and always passed inside a zeroed, oversized buffer, so a library built
 * with a longer struct (QATzip's ERR_INJECTION fields, UADK's 2025 setup fields, QPL's whole
 * job) never reads or writes past our memory. vendor-abi-check.c compares every constant and
 * offset here with the real headers (scripts/build-vendor-libs.sh builds and runs it).
 */
#ifndef MULTIFD_VENDOR_ABI_H
#define MULTIFD_VENDOR_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Room given to any vendor struct we hand over by pointer. */
#define VENDOR_STRUCT_ROOM 256

/* ---- QATzip ---------------------------------------------------------------------------- */

#define QZ_OK 0
#define QZ_DUPLICATE 1
#define QZ_PARAMS (-1)
#define QZ_FAIL (-2)
#define QZ_BUF_ERROR (-3)
#define QZ_DATA_ERROR (-4)
#define QZ_NO_HW 11
#define QZ_NONE 100
#define QZ_NOSW_NO_HW (-101)
#define QZ_NOSW_UNSUPPORTED_FMT (-116)

#define QZ_DIR_BOTH 2
#define QZ_DEFLATE_GZIP_EXT 2
#define QZ_DEFLATE 8
#define QZ_COMMON_MEM 0
#define QZ_PINNED_MEM 1
#define QZ_AUTO_SELECT_NUMA_NODE (-1) /* understood by qzMalloc from QATzip 1.3.0 on */
#define QZ_LOG_NONE 0

typedef struct {
  long hw_session_stat; /* QZ_OK when the session has a device */
  int thd_sess_stat;
  void *internal;
  unsigned long total_in;
  unsigned long total_out;
} QzSession_T;

typedef struct {
  int direction;
  unsigned comp_lvl;
  unsigned char comp_algorithm;
  unsigned max_forks;
  unsigned char sw_backup;
  unsigned hw_buff_sz;
  unsigned strm_buff_sz;
  unsigned input_sz_thrshold;
  unsigned req_cnt_thrshold;
  unsigned wait_cnt_thrshold;
  int polling_mode;
  unsigned is_sensitive_mode;
} QzSessionParamsCommon_T;

typedef struct {
  QzSessionParamsCommon_T common_params;
  int huffman_hdr;
  int data_fmt;
} QzSessionParamsDeflate_T;

/* Params as handed to the library: ours, inside room for a longer build of theirs. */
typedef union {
  QzSessionParamsDeflate_T p;
  unsigned char room[VENDOR_STRUCT_ROOM];
} QzParamsRoom;

_Static_assert(offsetof(QzSessionParamsCommon_T, sw_backup) == 16, "QzSessionParamsCommon_T.sw_backup");
_Static_assert(offsetof(QzSessionParamsCommon_T, input_sz_thrshold) == 28, "QzSessionParamsCommon_T.input_sz_thrshold");
_Static_assert(offsetof(QzSessionParamsDeflate_T, data_fmt) == 52, "QzSessionParamsDeflate_T.data_fmt");

typedef int qz_init_fn(QzSession_T *sess, unsigned char sw_backup);
typedef int qz_get_defaults_deflate_fn(QzSessionParamsDeflate_T *defaults);
typedef int qz_setup_session_deflate_fn(QzSession_T *sess, QzSessionParamsDeflate_T *params);
typedef int qz_compress_fn(QzSession_T *sess, const unsigned char *src, unsigned int *src_len, unsigned char *dest,
                           unsigned int *dest_len, unsigned int last);
typedef int qz_decompress_fn(QzSession_T *sess, const unsigned char *src, unsigned int *src_len, unsigned char *dest,
                             unsigned int *dest_len);
typedef unsigned int qz_max_compressed_length_fn(unsigned int src_sz, QzSession_T *sess);
typedef void *qz_malloc_fn(size_t sz, int numa, int force_pinned);
typedef void qz_free_fn(void *m);
typedef int qz_teardown_session_fn(QzSession_T *sess);
typedef int qz_close_fn(QzSession_T *sess);
typedef int qz_set_log_level_fn(int level); /* optional: returns the previous level */
/* Only looked up: present from QATzip 1.3.0 (its asynchronous API), which tells the version apart. */
#define QZ_SINCE_1_3_SYMBOL "qzCompress2"

/* ---- QPL ------------------------------------------------------------------------------- */

#define QPL_STS_OK 0
#define QPL_STS_MORE_OUTPUT_NEEDED 2
#define QPL_STS_MORE_INPUT_NEEDED 3
#define QPL_STS_QUEUES_ARE_BUSY_ERR 5
#define QPL_STS_LIBRARY_INTERNAL_ERR 6
#define QPL_STS_JOB_NOT_SUBMITTED 7
#define QPL_STS_NULL_PTR_ERR 50
#define QPL_STS_PATH_ERR 54
#define QPL_STS_INVALID_PARAM_ERR 55
#define QPL_STS_UNSUPPORTED_COMPRESSION_LEVEL 87
#define QPL_STS_INVALID_DEFLATE_DATA_ERR 100
#define QPL_STS_BAD_DIST_ERR 217
#define QPL_STS_INIT_HW_NOT_SUPPORTED 500
#define QPL_STS_INIT_LIBACCEL_NOT_FOUND 501
#define QPL_STS_INIT_LIBACCEL_ERROR 502
#define QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE 503

#define QPL_PATH_AUTO 0
#define QPL_PATH_HARDWARE 1
#define QPL_PATH_SOFTWARE 2
#define QPL_OP_DECOMPRESS 0
#define QPL_OP_COMPRESS 1
#define QPL_LEVEL_1 1
#define QPL_LEVEL_3 3

#define QPL_FLAG_FIRST 0x0001u
#define QPL_FLAG_LAST 0x0002u
#define QPL_FLAG_GZIP_MODE 0x0008u
#define QPL_FLAG_OMIT_VERIFY 0x4000u
#define QPL_FLAG_ZLIB_MODE 0x00080000u
#define QPL_FLAG_CANNED_MODE 0x00400000u

/*
 * The public head of qpl_job, up to `level` (the layout has not changed from 1.0 to 1.6).
 * The rest is opaque: jobs are allocated with qpl_get_job_size() bytes, never sizeof.
 */
typedef struct {
  uint8_t *next_in_ptr;
  uint32_t available_in;
  uint32_t total_in;
  uint8_t *next_out_ptr;
  uint32_t available_out;
  uint32_t total_out;
  int op;
  uint32_t flags;
  uint32_t crc;
  uint32_t xor_checksum;
  uint32_t last_bit_offset;
  int level;
} qpl_job;

_Static_assert(offsetof(qpl_job, available_out) == 24, "qpl_job.available_out");
_Static_assert(offsetof(qpl_job, level) == 52, "qpl_job.level");

typedef int qpl_get_job_size_fn(int path, uint32_t *job_size);
typedef int qpl_init_job_fn(int path, qpl_job *job);
typedef int qpl_job_fn(qpl_job *job); /* qpl_submit_job, qpl_wait_job, qpl_fini_job */
typedef const char *qpl_get_library_version_fn(void);

/* ---- UADK (wd_comp) -------------------------------------------------------------------- */

#define WD_DEFLATE 0
#define WD_ZLIB 1
#define WD_GZIP 2
#define WD_DIR_COMPRESS 0
#define WD_DIR_DECOMPRESS 1
#define WD_COMP_WS_4K 0
#define WD_COMP_WS_32K 4
#define WD_FLAT_BUF 0
#define SCHED_POLICY_RR 0
#define TASK_HW 1
#define WD_VERIFY_ERR 64
#define WD_OUT_EPARA 66

typedef uintptr_t handle_t;

/* struct wd_comp_sess_setup up to sched_param (2.5 to 2.9); 2.10 appends memory fields. */
struct wd_comp_sess_setup {
  int alg_type;
  int comp_lv;
  int win_sz;
  int op_type;
  void *sched_param;
};

/* struct sched_params (dev_id appended in 2025). */
struct sched_params {
  int numa_id;
  uint8_t type;
  uint8_t mode;
  uint32_t begin, end;
  uint32_t dev_id;
};

struct wd_comp_req {
  void *src;
  uint32_t src_len;
  void *dst;
  uint32_t dst_len;
  void *cb;
  void *cb_param;
  int op_type;
  int data_fmt;
  uint32_t last;
  uint32_t status;
  void *priv;
};

_Static_assert(offsetof(struct wd_comp_sess_setup, sched_param) == 16, "wd_comp_sess_setup.sched_param");
_Static_assert(offsetof(struct wd_comp_req, op_type) == 48 && offsetof(struct wd_comp_req, status) == 60, "wd_comp_req");

typedef int wd_comp_init2__fn(char *alg, uint32_t sched_type, int task_type, void *ctx_params);
typedef handle_t wd_comp_alloc_sess_fn(struct wd_comp_sess_setup *setup);
typedef void wd_comp_free_sess_fn(handle_t h);
typedef int wd_do_comp_sync_fn(handle_t h, struct wd_comp_req *req);

#endif

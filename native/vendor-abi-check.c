/*
 * Checks our prototypes of the vendor ABIs (vendor-abi.h) against the real vendor headers: every
 * constant the shim uses and every struct offset it relies on. Our header and theirs cannot
 * meet in one translation unit (same names), so this file is compiled twice by
 * scripts/build-vendor-libs.sh: on its own, it records the facts as vendor-abi.h has them;
 * with -DVENDOR_HEADERS, against the headers that script installs, it records them as the
 * vendors have them and its main() compares the two lists. Not part of the addon.
 */
#include <stddef.h>
#include <stdio.h>

#ifdef VENDOR_HEADERS
#include <qatzip.h>
#include <qpl/qpl.h>
#include <uadk/wd_comp.h>
#include <uadk/wd_sched.h>
#define SIDE(ours, theirs) (long)(theirs)
#define FACTS abi_theirs
#else
#include "vendor-abi.h"
#define SIDE(ours, theirs) (long)(ours)
#define FACTS abi_ours
#endif

struct abi_fact {
  const char *name;
  long value;
};

/* A constant named alike on both sides, one named differently, and a field's offset. */
#define SAME(name) {#name, SIDE(name, name)},
#define NAMED(ours, theirs) {#ours " = " #theirs, SIDE(ours, theirs)},
#define AT(type, field) {"offsetof(" #type ", " #field ")", (long)offsetof(type, field)},
#define SIZE(type) {"sizeof(" #type ")", (long)sizeof(type)},

const struct abi_fact FACTS[] = {
    /* QATzip */
    SAME(QZ_OK) SAME(QZ_DUPLICATE) SAME(QZ_PARAMS) SAME(QZ_FAIL) SAME(QZ_BUF_ERROR) SAME(QZ_DATA_ERROR) SAME(QZ_NO_HW)
    SAME(QZ_NONE) SAME(QZ_NOSW_NO_HW) SAME(QZ_NOSW_UNSUPPORTED_FMT) SAME(QZ_DIR_BOTH) SAME(QZ_DEFLATE_GZIP_EXT)
    SAME(QZ_DEFLATE) NAMED(QZ_COMMON_MEM, COMMON_MEM) NAMED(QZ_PINNED_MEM, PINNED_MEM) SAME(QZ_AUTO_SELECT_NUMA_NODE)
    NAMED(QZ_LOG_NONE, LOG_NONE)
    SIZE(QzSession_T) AT(QzSession_T, hw_session_stat) AT(QzSession_T, internal) AT(QzSession_T, total_out)
    SIZE(QzSessionParamsCommon_T) AT(QzSessionParamsCommon_T, comp_lvl) AT(QzSessionParamsCommon_T, sw_backup)
    AT(QzSessionParamsCommon_T, input_sz_thrshold) AT(QzSessionParamsCommon_T, is_sensitive_mode)
    SIZE(QzSessionParamsDeflate_T) AT(QzSessionParamsDeflate_T, data_fmt)
    /* QPL */
    SAME(QPL_STS_OK) SAME(QPL_STS_MORE_OUTPUT_NEEDED) SAME(QPL_STS_MORE_INPUT_NEEDED) SAME(QPL_STS_QUEUES_ARE_BUSY_ERR)
    SAME(QPL_STS_LIBRARY_INTERNAL_ERR) SAME(QPL_STS_JOB_NOT_SUBMITTED) SAME(QPL_STS_NULL_PTR_ERR) SAME(QPL_STS_PATH_ERR)
    SAME(QPL_STS_INVALID_PARAM_ERR) SAME(QPL_STS_UNSUPPORTED_COMPRESSION_LEVEL) SAME(QPL_STS_INVALID_DEFLATE_DATA_ERR)
    SAME(QPL_STS_BAD_DIST_ERR) SAME(QPL_STS_INIT_HW_NOT_SUPPORTED) SAME(QPL_STS_INIT_LIBACCEL_NOT_FOUND)
    SAME(QPL_STS_INIT_LIBACCEL_ERROR) SAME(QPL_STS_INIT_WORK_QUEUES_NOT_AVAILABLE)
    NAMED(QPL_PATH_AUTO, qpl_path_auto) NAMED(QPL_PATH_HARDWARE, qpl_path_hardware) NAMED(QPL_PATH_SOFTWARE, qpl_path_software)
    NAMED(QPL_OP_DECOMPRESS, qpl_op_decompress) NAMED(QPL_OP_COMPRESS, qpl_op_compress)
    NAMED(QPL_LEVEL_1, qpl_level_1) NAMED(QPL_LEVEL_3, qpl_level_3)
    SAME(QPL_FLAG_FIRST) SAME(QPL_FLAG_LAST) SAME(QPL_FLAG_GZIP_MODE) SAME(QPL_FLAG_OMIT_VERIFY) SAME(QPL_FLAG_ZLIB_MODE)
    SAME(QPL_FLAG_CANNED_MODE)
    AT(qpl_job, next_in_ptr) AT(qpl_job, available_in) AT(qpl_job, total_in) AT(qpl_job, next_out_ptr)
    AT(qpl_job, available_out) AT(qpl_job, total_out) AT(qpl_job, op) AT(qpl_job, flags) AT(qpl_job, crc)
    AT(qpl_job, xor_checksum) AT(qpl_job, last_bit_offset) AT(qpl_job, level)
    /* UADK */
    SAME(WD_DEFLATE) SAME(WD_ZLIB) SAME(WD_GZIP) SAME(WD_DIR_COMPRESS) SAME(WD_DIR_DECOMPRESS) SAME(WD_COMP_WS_4K)
    SAME(WD_COMP_WS_32K) SAME(WD_FLAT_BUF) SAME(SCHED_POLICY_RR) SAME(TASK_HW) SAME(WD_VERIFY_ERR) SAME(WD_OUT_EPARA)
    AT(struct wd_comp_sess_setup, alg_type) AT(struct wd_comp_sess_setup, win_sz) AT(struct wd_comp_sess_setup, op_type)
    AT(struct wd_comp_sess_setup, sched_param)
    AT(struct sched_params, type) AT(struct sched_params, mode) AT(struct sched_params, end) AT(struct sched_params, dev_id)
    SIZE(struct sched_params)
    AT(struct wd_comp_req, src) AT(struct wd_comp_req, src_len) AT(struct wd_comp_req, dst) AT(struct wd_comp_req, dst_len)
    AT(struct wd_comp_req, cb) AT(struct wd_comp_req, op_type) AT(struct wd_comp_req, data_fmt) AT(struct wd_comp_req, last)
    AT(struct wd_comp_req, status)
};

#ifdef VENDOR_HEADERS
#include <string.h>

extern const struct abi_fact abi_ours[];

/* Both sides list the same facts in the same order (one list above); compares them. */
int main(void) {
  size_t count = sizeof abi_theirs / sizeof *abi_theirs, wrong = 0;
  for (size_t i = 0; i < count; i++) {
    if (strcmp(abi_ours[i].name, abi_theirs[i].name) != 0) return fprintf(stderr, "vendor-abi-check: the two lists differ at %zu\n", i), 2;
    if (abi_ours[i].value == abi_theirs[i].value) continue;
    fprintf(stderr, "vendor-abi-check: %s is %ld in vendor-abi.h, %ld in the vendor's header\n", abi_ours[i].name, abi_ours[i].value,
            abi_theirs[i].value);
    wrong++;
  }
  printf("vendor-abi-check: %zu facts of vendor-abi.h checked against the vendor headers, %zu wrong\n", count, wrong);
  return wrong != 0;
}
#endif

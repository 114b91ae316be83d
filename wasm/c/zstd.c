/*
 * multifd zstd module: one complete zstd frame per call, in both directions,
 * over the scratch buffers of mf_common.c. Contexts persist across calls
 * (allocated on first use) so a worker pays zstd's setup cost once.
 */
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader, ZSTD_c_useRowMatchFinder */
#include <zstd.h>
#include <zstd_errors.h>

#include "mf_common.h"

/* Largest window a frame may declare; same bound as a streaming decoder given ZSTD_d_windowLogMax 24. */
#define WINDOW_LOG_MAX 24

static ZSTD_CCtx *cctx;
static ZSTD_DCtx *dctx;

MF_EXPORT const char *mf_version(void) { return "zstd " ZSTD_VERSION_STRING; }
MF_EXPORT int32_t mf_zstd_min_level(void) { return ZSTD_minCLevel(); }
MF_EXPORT int32_t mf_zstd_max_level(void) { return ZSTD_maxCLevel(); }

MF_EXPORT uint32_t mf_zstd_bound(uint32_t n) {
  size_t bound = ZSTD_compressBound(n);
  return ZSTD_isError(bound) ? UINT32_MAX : (uint32_t)bound;
}

/* Map a zstd error to our codes; `full_output` is what a too-small destination means for the caller. */
static int32_t library_failure(size_t code, int32_t full_output, int32_t otherwise) {
  int32_t mapped = otherwise;
  if (ZSTD_getErrorCode(code) == ZSTD_error_memory_allocation) mapped = MF_NOMEM;
  if (ZSTD_getErrorCode(code) == ZSTD_error_dstSize_tooSmall) mapped = full_output;
  return mf_fail(mapped, "%s", ZSTD_getErrorName(code));
}

MF_EXPORT int32_t mf_zstd_compress(uint32_t in_len, int32_t level) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, 0);
  if (rc != 0) return rc;
  if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
    return mf_fail(MF_LEVEL, "zstd level %d outside %d..%d", level, ZSTD_minCLevel(), ZSTD_maxCLevel());
  if (cctx == NULL) {
    cctx = ZSTD_createCCtx();
    if (cctx == NULL) return mf_fail(MF_NOMEM, "ZSTD_createCCtx failed");
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0);
    /*
     * zstd picks its row-based match finder for levels 5..12 only when it was
     * compiled with SSE2/NEON. Pinning the choice keeps the SIMD and scalar
     * builds byte-identical; "enable" is what native x86 builds choose for
     * inputs above 16 KiB, and it measured as fast or faster without SIMD.
     */
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_useRowMatchFinder, ZSTD_ps_enable);
  }
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
  size_t n = ZSTD_compress2(cctx, mf_out_buf, mf_out_cap, mf_in_buf, in_len);
  if (ZSTD_isError(n)) return library_failure(n, MF_DST_TOO_SMALL, MF_CORRUPT);
  return (int32_t)n;
}

MF_EXPORT int32_t mf_zstd_decompress(uint32_t in_len, uint32_t expected_len) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, expected_len);
  if (rc != 0) return rc;
  if (dctx == NULL) {
    dctx = ZSTD_createDCtx();
    if (dctx == NULL) return mf_fail(MF_NOMEM, "ZSTD_createDCtx failed");
    ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, WINDOW_LOG_MAX);
  }
  /*
   * The one-shot decoder ignores ZSTD_d_windowLogMax and happily walks
   * several concatenated or skippable frames, so the frame header and the
   * frame's extent are checked here first: exactly one data frame, nothing
   * after it, and a declared size (when present) equal to the expected one.
   */
  ZSTD_frameHeader header;
  size_t r = ZSTD_getFrameHeader(&header, mf_in_buf, in_len);
  if (ZSTD_isError(r)) return mf_fail(MF_CORRUPT, "%s", ZSTD_getErrorName(r));
  if (r != 0) return mf_fail(MF_CORRUPT, "truncated frame header (%u bytes, need %zu)", in_len, r);
  if (header.frameType != ZSTD_frame) return mf_fail(MF_CORRUPT, "skippable frame instead of a zstd data frame");
  if (header.windowSize > (1ull << WINDOW_LOG_MAX))
    return mf_fail(MF_CORRUPT, "%s: window %llu > %llu", ZSTD_getErrorString(ZSTD_error_frameParameter_windowTooLarge),
                   header.windowSize, 1ull << WINDOW_LOG_MAX);
  if (header.frameContentSize != ZSTD_CONTENTSIZE_UNKNOWN && header.frameContentSize != expected_len)
    return mf_fail(MF_SIZE, "frame content size %llu != expected %u", header.frameContentSize, expected_len);
  size_t frame_len = ZSTD_findFrameCompressedSize(mf_in_buf, in_len);
  if (ZSTD_isError(frame_len)) return mf_fail(MF_CORRUPT, "%s", ZSTD_getErrorName(frame_len));
  if (frame_len != in_len) return mf_fail(MF_TRAILING, "%u bytes after the %zu-byte frame", in_len - (uint32_t)frame_len, frame_len);

  size_t n = ZSTD_decompressDCtx(dctx, mf_out_buf, expected_len, mf_in_buf, frame_len);
  if (ZSTD_isError(n)) return library_failure(n, MF_SIZE, MF_CORRUPT);
  if (n != expected_len) return mf_fail(MF_SIZE, "decoded %zu bytes, expected %u", n, expected_len);
  return 0;
}

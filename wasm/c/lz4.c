/*
 * multifd lz4 module: one LZ4 *frame* (not a raw block) per call, so the
 * Debian `lz4` CLI and any LZ4F decoder read our payloads. Contexts persist
 * across calls.
 */
#define LZ4F_STATIC_LINKING_ONLY /* LZ4F_compressFrame_usingCDict: one-shot with a reused cctx */
#include <lz4.h>
#include <lz4frame.h>

#include "mf_common.h"

#define ACCELERATION_MAX 65537 /* LZ4_ACCELERATION_MAX */

static LZ4F_cctx *cctx;
static LZ4F_dctx *dctx;

MF_EXPORT const char *mf_version(void) { return "lz4 " LZ4_VERSION_STRING; }

static LZ4F_preferences_t preferences(uint32_t in_len, int32_t acceleration) {
  LZ4F_preferences_t prefs = LZ4F_INIT_PREFERENCES;
  /*
   * Block size is a cap: LZ4F shrinks the declared maximum to the smallest
   * size class holding the input (1 MB for a 512 KiB packet, like the lz4
   * CLI), which keeps a receiver's buffers small; inputs above 4 MB are split.
   */
  prefs.frameInfo.blockSizeID = LZ4F_max4MB;
  prefs.frameInfo.blockMode = LZ4F_blockIndependent;
  prefs.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum;
  prefs.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum;
  prefs.frameInfo.contentSize = in_len;
  /* LZ4F runs LZ4_compress_fast with acceleration (1 - level) for levels <= 0. */
  prefs.compressionLevel = -(acceleration - 1);
  return prefs;
}

MF_EXPORT uint32_t mf_lz4_bound(uint32_t n) {
  LZ4F_preferences_t prefs = preferences(n, 1);
  size_t bound = LZ4F_compressFrameBound(n, &prefs);
  return bound > UINT32_MAX ? UINT32_MAX : (uint32_t)bound;
}

MF_EXPORT int32_t mf_lz4_compress(uint32_t in_len, int32_t acceleration) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, 0);
  if (rc != 0) return rc;
  if (acceleration < 1 || acceleration > ACCELERATION_MAX)
    return mf_fail(MF_LEVEL, "lz4 acceleration %d outside 1..%d", acceleration, ACCELERATION_MAX);
  if (cctx == NULL && LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)))
    return mf_fail(MF_NOMEM, "LZ4F_createCompressionContext failed");
  LZ4F_preferences_t prefs = preferences(in_len, acceleration);
  size_t n = LZ4F_compressFrame_usingCDict(cctx, mf_out_buf, mf_out_cap, mf_in_buf, in_len, NULL, &prefs);
  if (LZ4F_isError(n)) {
    /* LZ4F documents the cctx as undefined after an error; start the next frame from a fresh one. */
    LZ4F_freeCompressionContext(cctx);
    cctx = NULL;
    LZ4F_errorCodes code = LZ4F_getErrorCode(n);
    return mf_fail(code == LZ4F_ERROR_dstMaxSize_tooSmall ? MF_DST_TOO_SMALL
                   : code == LZ4F_ERROR_allocation_failed ? MF_NOMEM : MF_CORRUPT,
                   "%s", LZ4F_getErrorName(n));
  }
  return (int32_t)n;
}

/*
 * A failed or unfinished frame leaves the dctx mid-frame. LZ4F_resetDecompressionContext
 * is not enough in lz4 1.9.4: it keeps the remaining content size of the abandoned
 * frame, so the next frame *without* a content-size field would fail with
 * ERROR_frameSize_wrong. Failures are rare, so the dctx is simply recreated.
 */
static int32_t decode_failure(int32_t code) {
  LZ4F_freeDecompressionContext(dctx);
  dctx = NULL;
  return code;
}

MF_EXPORT int32_t mf_lz4_decompress(uint32_t in_len, uint32_t expected_len) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, expected_len);
  if (rc != 0) return rc;
  if (dctx == NULL && LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)))
    return mf_fail(MF_NOMEM, "LZ4F_createDecompressionContext failed");
  /* LZ4F would also step over a skippable frame and report success with no output. */
  if (in_len < 4 || mf_load_le32(mf_in_buf) != LZ4F_MAGICNUMBER)
    return mf_fail(MF_CORRUPT, "not an LZ4 frame (magic number missing)");

  /* stableDst: the whole output is one buffer, so LZ4F may decode in place without its tmp buffers. */
  LZ4F_decompressOptions_t options = {.stableDst = 1};
  size_t produced = expected_len;
  size_t consumed = in_len;
  size_t hint = LZ4F_decompress(dctx, mf_out_buf, &produced, mf_in_buf, &consumed, &options);
  if (LZ4F_isError(hint)) {
    LZ4F_errorCodes code = LZ4F_getErrorCode(hint);
    return decode_failure(mf_fail(code == LZ4F_ERROR_allocation_failed ? MF_NOMEM
                                  : code == LZ4F_ERROR_frameSize_wrong ? MF_SIZE : MF_CORRUPT,
                                  "%s", LZ4F_getErrorName(hint)));
  }
  if (hint != 0) {
    /* Unfinished frame: either the output is full (more data than expected) or the input ran out. */
    if (produced == expected_len && consumed < in_len)
      return decode_failure(mf_fail(MF_SIZE, "frame decodes to more than the expected %u bytes", expected_len));
    return decode_failure(mf_fail(MF_CORRUPT, "truncated frame (%u bytes, decoder wants %zu more)", in_len, hint));
  }
  if (consumed != in_len) return mf_fail(MF_TRAILING, "%zu bytes after the %zu-byte frame", in_len - consumed, consumed);
  if (produced != expected_len) return mf_fail(MF_SIZE, "decoded %zu bytes, expected %u", produced, expected_len);
  return 0;
}

/*
 * Dynamic Huffman headers that Intel IAA accepts (used by the qpl format in deflate.c).
 *
 * RFC 1951 sends a dynamic block's literal/length and distance code lengths as one sequence,
 * so a run code (16: repeat the previous length 3-6 times; 17, 18: 3-10 and 11-138 zeros) may
 * begin among the literal/length lengths and end among the distance lengths, and a 16 may open
 * the distance lengths by repeating the last literal/length length. libdeflate writes both.
 * IAA reads the two sequences separately and refuses such a header with
 * QPL_STS_WRONG_NUM_LL_CODES_ERR (206) or QPL_STS_FIRST_D_CODE_16_ERR (204), intel/qpl#21;
 * QPL's software path, zlib and libdeflate accept it. A run that does either "crosses".
 */
#ifndef DEFLATE_IAA_H
#define DEFLATE_IAA_H

#include <stddef.h>
#include <stdint.h>

#define IAA_SAFE 0          /* no dynamic header of the stream has a crossing run */
#define IAA_CROSSING 1      /* at least one does */
#define IAA_MALFORMED (-1)  /* not one complete, valid raw DEFLATE stream (truncated, bad codes) */
#define IAA_NO_ROOM (-2)    /* the rewritten stream does not fit the output */
#define IAA_UNSPLITTABLE (-3) /* a split run needs a code-length symbol the block's precode lacks */

/*
 * Walks every block of the raw DEFLATE stream in[0..len) (the data of non-final blocks too,
 * to find the next header) and returns IAA_SAFE, IAA_CROSSING or IAA_MALFORMED. Stops at the
 * first crossing, and in the final block's header at the first item past the boundary: no
 * later one can cross. What it does not read, it does not check.
 */
int iaa_check(const uint8_t *in, size_t len);

/*
 * Writes to out[0..cap) the same stream with every crossing run cut at the boundary, and
 * stores its byte length in *out_len. Each block keeps its precode and its data bits; only
 * the cut runs' items change, so the stream grows by a few bits and decodes to the same bytes.
 * Returns IAA_SAFE, or IAA_MALFORMED, IAA_NO_ROOM or IAA_UNSPLITTABLE (out is then garbage).
 */
int iaa_split_runs(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len);

#endif

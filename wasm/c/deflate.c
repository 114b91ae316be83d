/*
 * multifd DEFLATE module (libdeflate): four wire formats over one library.
 *
 *   zlib    one RFC 1950 stream per packet
 *   qpl     per page: raw DEFLATE (<= 4 KiB window, headers IAA accepts: deflate_iaa.c) or the
 *           raw page, after a be32 length table
 *   uadk    per page: zlib stream with header 78 9c or the raw page, after a be32 length table
 *   qatzip  gzip members of <= 64 KiB input with QATzip's 'QZ' extra field
 *
 * libdeflate compresses whole buffers only (no streaming, no window limit) and
 * decodes whole streams into a bounded buffer without ever writing past it,
 * which is exactly the one-shot, hostile-input shape every format here needs.
 * The wrappers (zlib header/Adler-32, gzip header/CRC-32/ISIZE) are parsed
 * here rather than by libdeflate so that framing faults get MF_FORMAT and a
 * precise message, and only the DEFLATE body itself is the library's verdict.
 */
#include <libdeflate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deflate_iaa.h"
#include "mf_common.h"

#define LEVEL_MIN 1
#define LEVEL_MAX 9
#define QPL_WINDOW 4096       /* IAA history limit: no back-reference may reach further */
#define QATZIP_CHUNK 65536    /* QZ_HW_BUFF_SZ: input bytes per gzip member */
#define QATZIP_HEADER 24      /* 10 gzip bytes + XLEN + 'Q' 'Z' LEN src_sz dest_sz */
#define GZIP_TRAILER 8        /* CRC-32 + ISIZE */
#define ZLIB_WRAPPER 6        /* 2 header bytes + Adler-32 */

static struct libdeflate_compressor *compressors[LEVEL_MAX + 1];
static struct libdeflate_decompressor *decompressor;
static uint8_t *page_scratch; /* one page's compressed candidate (see encode_page) */
static size_t page_scratch_cap;

/*
 * Which page or gzip member a failure refers to. Set per unit (a plain store);
 * the "page 3: " prefix is only formatted when a failure is actually reported.
 */
struct site {
  const char *unit; /* NULL: the whole input */
  uint32_t index;
  size_t offset;    /* SIZE_MAX: not shown */
};
static struct site at;

static const char *where(void) {
  static char text[64];
  if (at.unit == NULL) return "";
  if (at.offset == SIZE_MAX) snprintf(text, sizeof text, "%s %u: ", at.unit, at.index);
  else snprintf(text, sizeof text, "%s %u at byte %zu: ", at.unit, at.index, at.offset);
  return text;
}

MF_EXPORT const char *mf_version(void) { return "libdeflate " LIBDEFLATE_VERSION_STRING; }

static uint32_t saturate(uint64_t n) { return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n; }

/* libdeflate's bound depends on the length only (the compressor argument is unused in 1.14). */
static uint64_t deflate_bound(uint64_t n) { return libdeflate_deflate_compress_bound(NULL, (size_t)n); }

static struct libdeflate_compressor *compressor(int32_t level) {
  if (compressors[level] == NULL) compressors[level] = libdeflate_alloc_compressor(level);
  return compressors[level];
}

static int32_t check_level(int32_t level) {
  if (level < LEVEL_MIN || level > LEVEL_MAX)
    return mf_fail(MF_LEVEL, "deflate level %d outside %d..%d", level, LEVEL_MIN, LEVEL_MAX);
  if (compressor(level) == NULL) return mf_fail(MF_NOMEM, "libdeflate_alloc_compressor(%d) failed", level);
  return 0;
}

static const char *result_name(enum libdeflate_result r) {
  switch (r) {
    case LIBDEFLATE_SUCCESS: return "LIBDEFLATE_SUCCESS";
    case LIBDEFLATE_BAD_DATA: return "LIBDEFLATE_BAD_DATA";
    case LIBDEFLATE_SHORT_OUTPUT: return "LIBDEFLATE_SHORT_OUTPUT";
    case LIBDEFLATE_INSUFFICIENT_SPACE: return "LIBDEFLATE_INSUFFICIENT_SPACE";
  }
  return "LIBDEFLATE_UNKNOWN";
}

/* Raw-inflate into out[0..cap); reports how much input the stream used and how much it produced. */
static int32_t inflate_raw(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap, size_t *in_used, size_t *out_used) {
  if (decompressor == NULL && (decompressor = libdeflate_alloc_decompressor()) == NULL)
    return mf_fail(MF_NOMEM, "libdeflate_alloc_decompressor failed");
  enum libdeflate_result r = libdeflate_deflate_decompress_ex(decompressor, in, in_len, out, cap, in_used, out_used);
  if (r == LIBDEFLATE_SUCCESS) return 0;
  if (r == LIBDEFLATE_INSUFFICIENT_SPACE)
    return mf_fail(MF_SIZE, "%sdecodes to more than %zu bytes (%s)", where(), cap, result_name(r));
  return mf_fail(MF_CORRUPT, "%s%s", where(), result_name(r));
}

/* One complete zlib stream in in[0..len) that must decode to exactly `expected` bytes. */
static int32_t unwrap_zlib(const uint8_t *in, size_t len, uint8_t *out, size_t expected) {
  if (len < 2) return mf_fail(MF_FORMAT, "%struncated zlib header", where());
  uint32_t cmf = in[0], flg = in[1];
  if ((cmf & 15) != 8 || (cmf >> 4) > 7 || (cmf << 8 | flg) % 31 != 0)
    return mf_fail(MF_FORMAT, "%sbad zlib header %02x %02x", where(), cmf, flg);
  if (flg & 0x20) return mf_fail(MF_FORMAT, "%szlib preset dictionary not supported", where());
  size_t used, produced;
  int32_t rc = inflate_raw(in + 2, len - 2, out, expected, &used, &produced);
  if (rc != 0) return rc;
  if (produced != expected) return mf_fail(MF_SIZE, "%sdecoded %zu bytes, expected %zu", where(), produced, expected);
  size_t rest = len - 2 - used;
  if (rest < 4) return mf_fail(MF_FORMAT, "%struncated Adler-32", where());
  uint32_t stored = mf_load_be32(in + 2 + used), actual = libdeflate_adler32(1, out, produced);
  if (stored != actual) return mf_fail(MF_FORMAT, "%sAdler-32 %08x != computed %08x", where(), stored, actual);
  if (rest > 4) return mf_fail(MF_TRAILING, "%s%zu bytes after the zlib stream", where(), rest - 4);
  return 0;
}

/* ---- zlib ---------------------------------------------------------------- */

MF_EXPORT uint32_t mf_zlib_bound(uint32_t n) { return saturate(ZLIB_WRAPPER + deflate_bound(n)); }

/* The whole input as one zlib or raw DEFLATE stream at `level`. */
static int32_t compress_input(uint32_t in_len, int32_t level, int zlib_wrapped) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, 0);
  if (rc == 0) rc = check_level(level);
  if (rc != 0) return rc;
  size_t n = (zlib_wrapped ? libdeflate_zlib_compress : libdeflate_deflate_compress)(compressors[level], mf_in_buf, in_len, mf_out_buf, mf_out_cap);
  if (n == 0) {
    return mf_fail(MF_DST_TOO_SMALL, "%s stream does not fit %u bytes (its bound is %u)", zlib_wrapped ? "zlib" : "raw DEFLATE", mf_out_cap,
                   saturate((zlib_wrapped ? ZLIB_WRAPPER : 0) + deflate_bound(in_len)));
  }
  return (int32_t)n;
}

MF_EXPORT int32_t mf_zlib_compress(uint32_t in_len, int32_t level) { return compress_input(in_len, level, 1); }

MF_EXPORT int32_t mf_zlib_decompress(uint32_t in_len, uint32_t expected_len) {
  mf_clear_error();
  at = (struct site){NULL, 0, 0};
  int32_t rc = mf_check_io(in_len, expected_len);
  return rc != 0 ? rc : unwrap_zlib(mf_in_buf, in_len, mf_out_buf, expected_len);
}

/* ---- raw DEFLATE and the IAA fix-up on their own ------------------------------ */

/*
 * No codec sends these two as they are: what libdeflate writes before the qpl
 * encoder's IAA fix-up, and the fix-up applied to any raw DEFLATE stream (of
 * several blocks too), so tests can show what the fix-up changes and why.
 */
MF_EXPORT int32_t mf_deflate_compress(uint32_t in_len, int32_t level) { return compress_input(in_len, level, 0); }

/* The stream in the input with every crossing run cut (deflate_iaa.h); its length. */
MF_EXPORT int32_t mf_iaa_split_runs(uint32_t in_len) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, 0);
  if (rc != 0) return rc;
  size_t n;
  switch (iaa_split_runs(mf_in_buf, in_len, mf_out_buf, mf_out_cap, &n)) {
    case IAA_SAFE: return (int32_t)n;
    case IAA_NO_ROOM: return mf_fail(MF_DST_TOO_SMALL, "the rewritten stream does not fit %u bytes", mf_out_cap);
    case IAA_UNSPLITTABLE: return mf_fail(MF_FORMAT, "a crossing run needs a code-length symbol its block's precode lacks");
    default: return mf_fail(MF_FORMAT, "not one complete raw DEFLATE stream");
  }
}

/* ---- qpl / uadk: per-page streams behind a be32 length table --------------- */

MF_EXPORT uint32_t mf_page_codec_bound(uint32_t page_count, uint32_t page_size) {
  return saturate(4ull * page_count + (uint64_t)page_count * page_size);
}

static int32_t check_pages(uint32_t page_count, uint32_t page_size, uint64_t in_len, uint64_t out_len) {
  if (page_size == 0) return mf_fail(MF_FORMAT, "page size 0");
  return mf_check_io(in_len, out_len);
}

/*
 * Compress one page into dst (room for page_size bytes) and return the entry
 * for the length table; page_size means "sent raw". Compression goes to a
 * scratch buffer of libdeflate's full bound because libdeflate gives up when
 * its output comes within 8 bytes of the space offered; compressing straight
 * into page_size - 1 bytes would send some barely-compressible pages raw.
 *
 * qpl: IAA rejects back-references farther than 4 KiB, and libdeflate cannot
 * limit its window. A page of at most 4 KiB cannot reference further back than
 * its own start, so those compress normally; bigger pages are always sent raw.
 * IAA also rejects dynamic headers whose code-length runs cross from the
 * literal/length lengths into the distance lengths, which libdeflate writes
 * (about 1 page in 2,800 of the shared data): those runs are cut at the boundary
 * (deflate_iaa.c), and a page whose stream cannot be cut goes raw.
 */
static int32_t encode_page(const uint8_t *page, uint32_t page_size, uint8_t *dst, int zlib_wrapped, uint32_t *length) {
  *length = page_size;
  if (!zlib_wrapped && page_size > QPL_WINDOW) return 0;
  size_t wrapper = zlib_wrapped ? ZLIB_WRAPPER : 0;
  if (page_scratch_cap < deflate_bound(page_size) + wrapper) {
    free(page_scratch);
    page_scratch_cap = deflate_bound(page_size) + wrapper;
    if ((page_scratch = malloc(page_scratch_cap)) == NULL) {
      page_scratch_cap = 0;
      return mf_fail(MF_NOMEM, "cannot allocate a %u-byte page scratch buffer", (uint32_t)deflate_bound(page_size));
    }
  }
  size_t n = libdeflate_deflate_compress(compressors[1], page, page_size, page_scratch, page_scratch_cap);
  if (n == 0 || n + wrapper >= page_size) return 0;
  if (zlib_wrapped) {
    /* The HiSilicon driver writes 78 9c (libdeflate would write 78 01 for level 1); match it byte for byte. */
    dst[0] = 0x78;
    dst[1] = 0x9c;
    memcpy(dst + 2, page_scratch, n);
    mf_store_be32(dst + 2 + n, libdeflate_adler32(1, page, page_size));
  } else {
    int safety = iaa_check(page_scratch, n);
    if (safety == IAA_SAFE) memcpy(dst, page_scratch, n);
    else if (safety != IAA_CROSSING || iaa_split_runs(page_scratch, n, dst, page_size - 1, &n) != IAA_SAFE) return 0;
  }
  *length = (uint32_t)(n + wrapper);
  return 0;
}

static int32_t compress_pages(uint32_t page_count, uint32_t page_size, int zlib_wrapped) {
  mf_clear_error();
  int32_t rc = check_pages(page_count, page_size, (uint64_t)page_count * page_size, mf_page_codec_bound(page_count, page_size));
  if (rc == 0) rc = check_level(1);
  if (rc != 0) return rc;
  uint8_t *table = mf_out_buf, *dst = mf_out_buf + 4ull * page_count;
  for (uint32_t i = 0; i < page_count; i++) {
    const uint8_t *page = mf_in_buf + (size_t)i * page_size;
    uint32_t length;
    if ((rc = encode_page(page, page_size, dst, zlib_wrapped, &length)) != 0) return rc;
    if (length == page_size) memcpy(dst, page, page_size);
    mf_store_be32(table + 4ull * i, length);
    dst += length;
  }
  return (int32_t)(dst - mf_out_buf);
}

static int32_t decompress_pages(uint32_t in_len, uint32_t page_count, uint32_t page_size, int zlib_wrapped) {
  mf_clear_error();
  int32_t rc = check_pages(page_count, page_size, in_len, (uint64_t)page_count * page_size);
  if (rc != 0) return rc;
  /* Validate the whole table before touching the output: a bad packet writes nothing. */
  uint64_t table_len = 4ull * page_count, total = table_len;
  if (in_len < table_len) return mf_fail(MF_FORMAT, "length table needs %llu bytes, payload has %u", table_len, in_len);
  for (uint32_t i = 0; i < page_count; i++) {
    uint32_t length = mf_load_be32(mf_in_buf + 4ull * i);
    if (length > page_size) return mf_fail(MF_FORMAT, "page %u: length %u > page size %u", i, length, page_size);
    total += length;
  }
  if (total != in_len) return mf_fail(MF_FORMAT, "lengths add up to %llu bytes, payload has %u", total, in_len);

  const uint8_t *src = mf_in_buf + table_len;
  for (uint32_t i = 0; i < page_count; i++) {
    uint32_t length = mf_load_be32(mf_in_buf + 4ull * i);
    uint8_t *page = mf_out_buf + (size_t)i * page_size;
    at = (struct site){"page", i, SIZE_MAX};
    if (length == page_size) {
      memcpy(page, src, page_size);
    } else if (zlib_wrapped) {
      if ((rc = unwrap_zlib(src, length, page, page_size)) != 0) return rc;
    } else {
      size_t used, produced;
      if ((rc = inflate_raw(src, length, page, page_size, &used, &produced)) != 0) return rc;
      if (produced != page_size) return mf_fail(MF_SIZE, "%sdecoded %zu bytes, expected %u", where(), produced, page_size);
      if (used != length) return mf_fail(MF_TRAILING, "%s%zu bytes after the DEFLATE stream", where(), length - used);
    }
    src += length;
  }
  return 0;
}

MF_EXPORT int32_t mf_qpl_compress(uint32_t page_count, uint32_t page_size) { return compress_pages(page_count, page_size, 0); }
MF_EXPORT int32_t mf_uadk_compress(uint32_t page_count, uint32_t page_size) { return compress_pages(page_count, page_size, 1); }
MF_EXPORT int32_t mf_qpl_decompress(uint32_t in_len, uint32_t page_count, uint32_t page_size) {
  return decompress_pages(in_len, page_count, page_size, 0);
}
MF_EXPORT int32_t mf_uadk_decompress(uint32_t in_len, uint32_t page_count, uint32_t page_size) {
  return decompress_pages(in_len, page_count, page_size, 1);
}

/* ---- qatzip: QZ_DEFLATE_GZIP_EXT ------------------------------------------ */

MF_EXPORT uint32_t mf_qatzip_bound(uint32_t n) {
  uint64_t full = n / QATZIP_CHUNK, rest = n % QATZIP_CHUNK;
  uint64_t member = QATZIP_HEADER + GZIP_TRAILER;
  uint64_t bound = full * (member + deflate_bound(QATZIP_CHUNK));
  if (rest != 0 || n == 0) bound += member + deflate_bound(rest);
  return saturate(bound);
}

MF_EXPORT int32_t mf_qatzip_compress(uint32_t in_len, int32_t level) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, 0);
  if (rc == 0) rc = check_level(level);
  if (rc != 0) return rc;
  static const uint8_t header[16] = {0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, 0xff, 12, 0, 'Q', 'Z', 8, 0};
  uint8_t *dst = mf_out_buf, *end = mf_out_buf + mf_out_cap;
  uint32_t offset = 0;
  /* Empty input still gets one (empty) member: a gzip stream has at least one. */
  do {
    uint32_t chunk = in_len - offset < QATZIP_CHUNK ? in_len - offset : QATZIP_CHUNK;
    const uint8_t *src = mf_in_buf + offset;
    size_t room = (size_t)(end - dst);
    size_t n = room < QATZIP_HEADER + GZIP_TRAILER ? 0
             : libdeflate_deflate_compress(compressors[level], src, chunk, dst + QATZIP_HEADER, room - QATZIP_HEADER - GZIP_TRAILER);
    if (n == 0) return mf_fail(MF_DST_TOO_SMALL, "gzip members do not fit %u bytes (mf_qatzip_bound is %u)", mf_out_cap, mf_qatzip_bound(in_len));
    memcpy(dst, header, sizeof header);
    mf_store_le32(dst + 16, chunk);      /* src_sz */
    mf_store_le32(dst + 20, (uint32_t)n); /* dest_sz */
    dst += QATZIP_HEADER + n;
    mf_store_le32(dst, libdeflate_crc32(0, src, chunk));
    mf_store_le32(dst + 4, chunk);       /* ISIZE */
    dst += GZIP_TRAILER;
    offset += chunk;
  } while (offset < in_len);
  return (int32_t)(dst - mf_out_buf);
}

/* The QZ subfield's sizes, when the member carries one. */
struct qz_field {
  int present;
  uint32_t src_sz, dest_sz;
};

/* Parse one RFC 1952 member header at p[0..avail); returns its length or a negative code. */
static int64_t parse_gzip_header(const uint8_t *p, size_t avail, struct qz_field *qz) {
  qz->present = 0;
  if (avail < 10) return mf_fail(MF_FORMAT, "%struncated gzip header", where());
  if (p[0] != 0x1f || p[1] != 0x8b) return mf_fail(MF_FORMAT, "%sbad gzip magic %02x %02x", where(), p[0], p[1]);
  if (p[2] != 8) return mf_fail(MF_FORMAT, "%sgzip compression method %u is not DEFLATE", where(), p[2]);
  uint32_t flg = p[3];
  if (flg & 0xe0) return mf_fail(MF_FORMAT, "%sreserved gzip FLG bits set (%02x)", where(), flg);
  size_t pos = 10;
  if (flg & 0x04) { /* FEXTRA: XLEN, then subfields SI1 SI2 LEN data that must tile XLEN exactly */
    if (avail - pos < 2) return mf_fail(MF_FORMAT, "%struncated gzip XLEN", where());
    size_t xlen = mf_load_le16(p + pos);
    pos += 2;
    if (avail - pos < xlen) return mf_fail(MF_FORMAT, "%sgzip extra field (%zu bytes) runs past the input", where(), xlen);
    size_t sub = pos, extra_end = pos + xlen;
    while (sub < extra_end) {
      if (extra_end - sub < 4) return mf_fail(MF_FORMAT, "%struncated gzip extra subfield header", where());
      size_t len = mf_load_le16(p + sub + 2);
      if (extra_end - sub - 4 < len) return mf_fail(MF_FORMAT, "%sgzip extra subfield overruns XLEN", where());
      if (p[sub] == 'Q' && p[sub + 1] == 'Z' && len == 8) {
        qz->present = 1;
        qz->src_sz = mf_load_le32(p + sub + 4);
        qz->dest_sz = mf_load_le32(p + sub + 8);
      }
      sub += 4 + len;
    }
    pos = extra_end;
  }
  for (uint32_t bit = 0x08; bit <= 0x10; bit <<= 1) { /* FNAME, FCOMMENT: NUL-terminated */
    if (!(flg & bit)) continue;
    const uint8_t *nul = memchr(p + pos, 0, avail - pos);
    if (nul == NULL) return mf_fail(MF_FORMAT, "%sunterminated gzip %s", where(), bit == 0x08 ? "FNAME" : "FCOMMENT");
    pos = (size_t)(nul - p) + 1;
  }
  if (flg & 0x02) { /* FHCRC */
    if (avail - pos < 2) return mf_fail(MF_FORMAT, "%struncated gzip FHCRC", where());
    pos += 2;
  }
  return (int64_t)pos;
}

MF_EXPORT int32_t mf_qatzip_decompress(uint32_t in_len, uint32_t expected_len) {
  mf_clear_error();
  int32_t rc = mf_check_io(in_len, expected_len);
  if (rc != 0) return rc;
  size_t pos = 0, produced = 0;
  uint32_t member = 0;
  do {
    at = (struct site){"member", member, pos};
    const uint8_t *p = mf_in_buf + pos;
    size_t avail = in_len - pos;
    /* Bytes that do not even start like a member are trailing garbage, not a broken member. */
    if (member > 0 && (p[0] != 0x1f || (avail > 1 && p[1] != 0x8b)))
      return mf_fail(MF_TRAILING, "%zu bytes after %u gzip members", avail, member);
    struct qz_field qz;
    int64_t header_len = parse_gzip_header(p, avail, &qz);
    if (header_len < 0) return (int32_t)header_len;
    size_t used, out;
    rc = inflate_raw(p + header_len, avail - (size_t)header_len, mf_out_buf + produced, expected_len - produced, &used, &out);
    if (rc != 0) return rc;
    const uint8_t *trailer = p + header_len + used;
    if (avail - (size_t)header_len - used < GZIP_TRAILER) return mf_fail(MF_FORMAT, "%struncated gzip trailer", where());
    uint32_t crc = libdeflate_crc32(0, mf_out_buf + produced, out);
    if (mf_load_le32(trailer) != crc) return mf_fail(MF_FORMAT, "%sCRC-32 %08x != computed %08x", where(), mf_load_le32(trailer), crc);
    if (mf_load_le32(trailer + 4) != (uint32_t)out) return mf_fail(MF_FORMAT, "%sISIZE %u != decoded %zu", where(), mf_load_le32(trailer + 4), out);
    if (qz.present && (qz.src_sz != out || qz.dest_sz != used))
      return mf_fail(MF_FORMAT, "%sQZ field says src_sz %u dest_sz %u, member has %zu and %zu", where(), qz.src_sz, qz.dest_sz, out, used);
    produced += out;
    pos += (size_t)header_len + used + GZIP_TRAILER;
    member++;
  } while (pos < in_len);
  if (produced != expected_len) return mf_fail(MF_SIZE, "decoded %zu bytes, expected %u", produced, expected_len);
  return 0;
}

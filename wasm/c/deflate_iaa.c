/*
 * Finding and cutting code-length runs that cross from the literal/length lengths into the
 * distance lengths (see deflate_iaa.h). Written from RFC 1951 alone.
 *
 * Why cut rather than re-encode: the cut keeps the block's precode (the Huffman code of the
 * code-length symbols) and every data bit, so the page keeps libdeflate's compression and the
 * cost is a few header bits on the rare page that needs it. Every symbol a cut needs is in
 * the precode already whenever the run repeats a non-zero length: that length was sent as a
 * literal before the run began, and the run's own 16 is there. libdeflate never crosses with
 * a run of zeros (its literal/length lengths always end with a used symbol), so the cases
 * IAA_UNSPLITTABLE covers do not arise from it; the caller then sends the page raw.
 *
 * The common page costs most of one header's parse (about 1 us in WebAssembly, some 4 % of
 * compressing the page): libdeflate writes one block for a 4 KiB page at level 1, and the check
 * stops in the final block's header once past the boundary. Only a stream of several blocks is
 * decoded symbol by symbol, to find where the next header starts, and only a crossing stream
 * is rewritten.
 */
#include "deflate_iaa.h"

#include <string.h>

/* For what runs on a few pages only (multi-block streams, rewrites, the end of the input): small code. */
#ifdef __clang__
#define RARE __attribute__((cold, minsize, noinline))
#else
#define RARE __attribute__((cold, noinline))
#endif

#define MAX_CODE_BITS 15
#define LITLEN_LIMIT 286 /* HLIT + 257 can say 288; 286 and 287 are never valid */
#define DIST_LIMIT 30    /* HDIST + 1 can say 32; IAA refuses more than 30 */
#define PRECODE_SYMS 19
#define PRECODE_BITS 7

/* The order of the precode's 3-bit lengths in the header (RFC 1951, 3.2.7). */
static const uint8_t precode_order[PRECODE_SYMS] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};

/* ---- bits ------------------------------------------------------------------ */

/*
 * A least-significant-bit-first reader with a 64-bit buffer. Past the end it reads zeros;
 * overrun() tells.
 */
struct reader {
  const uint8_t *in;
  size_t len;  /* bytes */
  size_t next; /* the next byte to load */
  uint64_t buf;
  unsigned have; /* bits in buf */
};

/* Loads whole bytes until the buffer holds 57 bits or more, zeros past the end. */
RARE static void refill_near_end(struct reader *r) {
  for (; r->have <= 56; r->have += 8, r->next++) r->buf |= (uint64_t)(r->next < r->len ? r->in[r->next] : 0) << r->have;
}

/*
 * The next 32 bits, without consuming them. Away from the end one unaligned load tops the
 * buffer up to 57 bits or more; the bits it loads past `have` are the stream's own, so loading
 * them again later changes nothing.
 */
static uint32_t peek32(struct reader *r) {
  if (r->have < 32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (r->next + 8 <= r->len) {
      uint64_t word;
      memcpy(&word, r->in + r->next, 8);
      r->buf |= word << r->have;
      r->next += (63 - r->have) / 8;
      r->have |= 56;
    } else
#endif
      refill_near_end(r);
  }
  return (uint32_t)r->buf;
}

static void drop(struct reader *r, unsigned n) {
  r->buf >>= n;
  r->have -= n;
}

/* The next n (at most 24) bits as a number. */
static uint32_t take(struct reader *r, unsigned n) {
  uint32_t v = peek32(r) & ((1u << n) - 1);
  drop(r, n);
  return v;
}

static size_t position(const struct reader *r) { return 8 * r->next - r->have; }

static void seek(struct reader *r, size_t bit) {
  r->next = bit / 8;
  r->buf = 0;
  r->have = 0;
  peek32(r);
  drop(r, bit % 8);
}

static int overrun(const struct reader *r) { return position(r) > 8 * r->len; }

static struct reader reader_at(const uint8_t *in, size_t len, size_t bit) {
  struct reader r = {in, len, 0, 0, 0};
  seek(&r, bit);
  return r;
}

/* A least-significant-bit-first writer; `full` once a byte did not fit. */
struct writer {
  uint8_t *out;
  size_t cap, n;
  uint64_t acc;
  unsigned bits;
  int full;
};

static void put(struct writer *w, uint32_t v, unsigned n) {
  w->acc |= (uint64_t)v << w->bits;
  w->bits += n;
  for (; w->bits >= 8; w->bits -= 8, w->acc >>= 8, w->n++) {
    if (w->n < w->cap) w->out[w->n] = (uint8_t)w->acc;
    else w->full = 1;
  }
}

static void put_padding(struct writer *w) {
  if (w->bits != 0) put(w, 0, 8 - w->bits);
}

/* ---- Huffman codes ------------------------------------------------------------ */

/* Reverses the low n bits: Huffman codewords are sent most significant bit first. */
static uint32_t reversed(uint32_t code, unsigned n) {
  uint32_t r = 0;
  for (unsigned i = 0; i < n; i++, code >>= 1) r = r << 1 | (code & 1);
  return r;
}

/* The precode: a lookup table on the next 7 bits, and the codewords for writing. */
struct precode {
  uint8_t len[PRECODE_SYMS];
  uint16_t sent[PRECODE_SYMS];           /* codeword in sending order (reversed) */
  uint16_t table[1 << PRECODE_BITS];     /* symbol | length << 8; 0: no codeword */
};

/* Canonical codewords from lengths (RFC 1951, 3.2.2); -1 when the lengths oversubscribe. */
static int precode_build(struct precode *p) {
  unsigned count[PRECODE_BITS + 1] = {0}, next[PRECODE_BITS + 1];
  for (unsigned s = 0; s < PRECODE_SYMS; s++) count[p->len[s]]++;
  count[0] = 0;
  unsigned code = 0;
  for (unsigned bits = 1; bits <= PRECODE_BITS; bits++) {
    code = (code + count[bits - 1]) << 1;
    next[bits] = code;
  }
  memset(p->table, 0, sizeof p->table);
  for (unsigned s = 0; s < PRECODE_SYMS; s++) {
    unsigned n = p->len[s];
    if (n == 0) continue;
    if (next[n] >= 1u << n) return -1;
    p->sent[s] = (uint16_t)reversed(next[n]++, n);
    for (unsigned i = p->sent[s]; i < 1u << PRECODE_BITS; i += 1u << n) p->table[i] = (uint16_t)(s | n << 8);
  }
  return 0;
}

static int precode_decode(const struct precode *p, struct reader *r) {
  unsigned entry = p->table[peek32(r) & ((1u << PRECODE_BITS) - 1)];
  if (entry == 0) return -1;
  drop(r, entry >> 8);
  return (int)(entry & 0xff);
}

/*
 * A literal/length or distance code for walking over a block's data: how many codewords each
 * length has, and the symbols in canonical order. Decoding tries one more bit at a time; it
 * runs only on streams of several blocks, which level-1 pages of 4 KiB never are.
 */
struct code {
  uint16_t count[MAX_CODE_BITS + 1];
  uint16_t symbol[288];
};

RARE static int code_build(struct code *c, const uint8_t *lens, unsigned n) {
  uint16_t offset[MAX_CODE_BITS + 1];
  memset(c->count, 0, sizeof c->count);
  for (unsigned s = 0; s < n; s++) c->count[lens[s]]++;
  int left = 1;
  for (unsigned bits = 1; bits <= MAX_CODE_BITS; bits++) {
    left = 2 * left - c->count[bits];
    if (left < 0) return -1;
  }
  offset[1] = 0;
  for (unsigned bits = 1; bits < MAX_CODE_BITS; bits++) offset[bits + 1] = (uint16_t)(offset[bits] + c->count[bits]);
  for (unsigned s = 0; s < n; s++) if (lens[s] != 0) c->symbol[offset[lens[s]]++] = (uint16_t)s;
  return 0;
}

RARE static int code_decode(const struct code *c, struct reader *r) {
  uint32_t bits = peek32(r);
  int code = 0, first = 0, index = 0;
  for (unsigned n = 1; n <= MAX_CODE_BITS; n++, bits >>= 1) {
    code |= (int)(bits & 1);
    int count = c->count[n];
    if (code - first < count) {
      drop(r, n);
      return c->symbol[index + code - first];
    }
    index += count;
    first = (first + count) << 1;
    code <<= 1;
  }
  return -1;
}

static struct code fixed_litlen, fixed_dist;

RARE static void build_fixed_codes(void) {
  static int built;
  if (built) return;
  uint8_t lens[288];
  memset(lens, 8, 144);
  memset(lens + 144, 9, 112);
  memset(lens + 256, 7, 24);
  memset(lens + 280, 8, 8);
  code_build(&fixed_litlen, lens, 288);
  memset(lens, 5, DIST_LIMIT);
  code_build(&fixed_dist, lens, DIST_LIMIT);
  built = 1;
}

/* Walks a block's data up to and including its end-of-block symbol. */
RARE static int skip_data(struct reader *r, const struct code *litlen, const struct code *dist) {
  for (;;) {
    if (overrun(r)) return IAA_MALFORMED;
    int sym = code_decode(litlen, r);
    if (sym < 0 || sym > 285) return IAA_MALFORMED;
    if (sym < 256) continue;
    if (sym == 256) return overrun(r) ? IAA_MALFORMED : IAA_SAFE;
    unsigned slot = (unsigned)sym - 257; /* length extra bits: 0 for 257-264 and 285, then 1-5 */
    take(r, slot < 8 || slot == 28 ? 0 : slot / 4 - 1);
    int d = code_decode(dist, r);
    if (d < 0 || d >= DIST_LIMIT) return IAA_MALFORMED;
    take(r, d < 4 ? 0 : (unsigned)d / 2 - 1);
  }
}

/* ---- rewriting ------------------------------------------------------------------ */

/* A rewrite in progress: input bits before `copied` are in the output already. */
struct edit {
  struct writer w;
  const uint8_t *in;
  size_t len;
  size_t copied;
};

RARE static void copy_to(struct edit *e, size_t to) {
  struct reader r = reader_at(e->in, e->len, e->copied);
  while (to - position(&r) >= 24) put(&e->w, take(&r, 24), 24);
  unsigned rest = (unsigned)(to - position(&r));
  put(&e->w, take(&r, rest), rest);
  e->copied = to;
}

/* How many of `count` lengths one run item of at most `most` sends: all, or few enough to leave 3 for the next. */
static unsigned run_part(unsigned count, unsigned most) { return count <= most ? count : count - most >= 3 ? most : count - 3; }

/*
 * Writes `count` copies of length `value` with the block's precode: runs where the precode
 * has their symbol, the length itself otherwise. `after_value`: the length just before is
 * `value` too, so 16 may repeat it; the distance lengths start without one.
 */
RARE static int put_lengths(struct writer *w, const struct precode *p, unsigned value, unsigned count, int after_value) {
  while (count > 0) {
    unsigned sym = value, used = 1, extra = 0, extra_bits = 0;
    if (value == 0 && count >= 11 && p->len[18]) sym = 18, used = run_part(count, 138), extra = used - 11, extra_bits = 7;
    else if (value == 0 && count >= 3 && p->len[17]) sym = 17, used = run_part(count, 10), extra = used - 3, extra_bits = 3;
    else if (after_value && count >= 3 && p->len[16]) sym = 16, used = run_part(count, 6), extra = used - 3, extra_bits = 2;
    if (p->len[sym] == 0) return IAA_UNSPLITTABLE;
    put(w, p->sent[sym], p->len[sym]);
    put(w, extra, extra_bits);
    count -= used;
    after_value = 1;
  }
  return IAA_SAFE;
}

/* ---- blocks ---------------------------------------------------------------------- */

/*
 * Reads a dynamic block's header into lens (literal/length lengths, then distance lengths).
 * Without an edit, returns IAA_CROSSING at the first crossing run; with one, writes the
 * crossing run's items again cut at the boundary. `check_only`: nothing after the header is
 * needed (a final block, no edit), so the reading stops once no run can cross any more.
 */
static int dynamic_header(struct reader *r, struct edit *e, int check_only, uint8_t *lens, unsigned *hlit_out, unsigned *hdist_out) {
  unsigned hlit = take(r, 5) + 257, hdist = take(r, 5) + 1, hclen = take(r, 4) + 4;
  if (hlit > LITLEN_LIMIT || hdist > DIST_LIMIT) return IAA_MALFORMED;
  struct precode p;
  memset(p.len, 0, sizeof p.len);
  for (unsigned i = 0; i < hclen; i++) p.len[precode_order[i]] = (uint8_t)take(r, 3);
  if (precode_build(&p) != 0) return IAA_MALFORMED;
  /* Past the input the reader gives zeros, and every item adds a length: overrun is checked once, after. */
  unsigned n = 0, total = hlit + hdist;
  while (n < total) {
    if (check_only && n > hlit) return overrun(r) ? IAA_MALFORMED : IAA_SAFE; /* past the boundary's item */
    size_t start = e != NULL ? position(r) : 0;
    int sym = precode_decode(&p, r);
    if (sym < 0) return IAA_MALFORMED;
    if (sym < 16) {
      lens[n++] = (uint8_t)sym;
      continue;
    }
    unsigned value = 0, count;
    if (sym == 16) {
      if (n == 0) return IAA_MALFORMED;
      value = lens[n - 1];
      count = 3 + take(r, 2);
    } else {
      count = sym == 17 ? 3 + take(r, 3) : 11 + take(r, 7);
    }
    if (count > total - n) return IAA_MALFORMED;
    if ((n < hlit && n + count > hlit) || (sym == 16 && n == hlit)) {
      if (overrun(r)) return IAA_MALFORMED;
      if (e == NULL) return IAA_CROSSING;
      copy_to(e, start);
      int rc = put_lengths(&e->w, &p, value, hlit - n, sym == 16);
      if (rc == IAA_SAFE) rc = put_lengths(&e->w, &p, value, n + count - hlit, 0);
      if (rc != IAA_SAFE) return rc;
      e->copied = position(r);
    }
    memset(lens + n, (int)value, count);
    n += count;
  }
  if (overrun(r) || lens[256] == 0) return IAA_MALFORMED;
  *hlit_out = hlit;
  *hdist_out = hdist;
  return IAA_SAFE;
}

/* Every block in turn; with an edit, to the end of the final block's data. */
static int walk(const uint8_t *in, size_t len, struct edit *e) {
  struct reader r = reader_at(in, len, 0);
  unsigned final;
  do {
    final = take(&r, 1);
    unsigned type = take(&r, 2);
    if (overrun(&r)) return IAA_MALFORMED;
    if (type == 0) { /* stored: byte-aligned, so a rewrite pads its output to a byte here */
      size_t header_end = position(&r), aligned = (header_end + 7) & ~(size_t)7;
      seek(&r, aligned);
      uint32_t bytes = take(&r, 16), complement = take(&r, 16);
      if (bytes != (~complement & 0xffff)) return IAA_MALFORMED;
      if (e != NULL) {
        copy_to(e, header_end);
        put_padding(&e->w);
        e->copied = aligned;
      }
      seek(&r, aligned + 32 + 8 * (size_t)bytes);
      if (overrun(&r)) return IAA_MALFORMED;
    } else if (type == 1) {
      if (final && e == NULL) return IAA_SAFE;
      build_fixed_codes();
      int rc = skip_data(&r, &fixed_litlen, &fixed_dist);
      if (rc != IAA_SAFE) return rc;
    } else if (type == 2) {
      uint8_t lens[LITLEN_LIMIT + DIST_LIMIT];
      unsigned hlit, hdist;
      int rc = dynamic_header(&r, e, final && e == NULL, lens, &hlit, &hdist);
      if (rc != IAA_SAFE || (final && e == NULL)) return rc;
      struct code litlen, dist;
      if (code_build(&litlen, lens, hlit) != 0 || code_build(&dist, lens + hlit, hdist) != 0) return IAA_MALFORMED;
      if ((rc = skip_data(&r, &litlen, &dist)) != IAA_SAFE) return rc;
    } else {
      return IAA_MALFORMED;
    }
  } while (!final);
  if (e != NULL) {
    copy_to(e, position(&r));
    put_padding(&e->w);
  }
  return IAA_SAFE;
}

int iaa_check(const uint8_t *in, size_t len) { return walk(in, len, NULL); }

int iaa_split_runs(const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *out_len) {
  struct edit e = {{out, cap, 0, 0, 0, 0}, in, len, 0};
  int rc = walk(in, len, &e);
  if (rc != IAA_SAFE) return rc;
  if (e.w.full) return IAA_NO_ROOM;
  *out_len = e.w.n;
  return IAA_SAFE;
}

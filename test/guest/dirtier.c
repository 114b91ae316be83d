/*
 * The test guest's workload (built with `gcc -static` by scripts/build-test-guest.sh, run by
 * test/guest/init): fills `dirtier.mib` MiB of anonymous memory (kernel command line, default
 * 160) with a mix of page kinds, prints "dirtier: ready ...", then forever rewrites pseudo-random
 * pages in batches and prints "dirtier: tick N" after each batch, N counting up from 1.
 *
 * The mix is what a migration meets in a real guest: zero pages (found by zero-page detection),
 * text-like pages and small repeating patterns (compress well), pseudo-random pages (do not).
 * A rewritten page takes a fresh kind, so the mix stays the same while its pages move.
 *
 * The rate is low on purpose: DIRTY_PAGES_PER_TICK pages every TICK_NS, a few thousand pages a
 * second, so that pre-copy under TCG (slow guest, loopback link) converges in a few rounds; the
 * batches sleep between them rather than spin, which leaves the host's cores to QEMU.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE_SIZE 4096
#define DEFAULT_MIB 160
#define TICK_NS 100000000L /* 100 ms */
#define DIRTY_PAGES_PER_TICK 300

enum page_kind { KIND_ZERO, KIND_TEXT, KIND_RANDOM, KIND_PATTERN, KIND_COUNT };

static const char *const WORDS[] = {
    "migration ", "multifd ", "channel ", "packet ", "zero page ", "dirty bitmap ",
    "the quick brown fox jumps over the lazy dog ", "lorem ipsum dolor sit amet ", "\n",
};

/* xorshift64*: fast, and the same stream on every run (the guest needs no entropy). */
static uint64_t next_random(uint64_t *state) {
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1DULL;
}

/* dirtier.mib=N from /proc/cmdline (a dotted parameter never reaches init's environment). */
static unsigned long mib_from_cmdline(void) {
  char line[4096];
  FILE *file = fopen("/proc/cmdline", "r");
  if (!file) return DEFAULT_MIB;
  size_t length = fread(line, 1, sizeof line - 1, file);
  fclose(file);
  line[length] = '\0';
  const char *at = strstr(line, "dirtier.mib=");
  if (!at) return DEFAULT_MIB;
  unsigned long mib = strtoul(at + strlen("dirtier.mib="), NULL, 10);
  return mib > 0 ? mib : DEFAULT_MIB;
}

static void fill_page(uint8_t *page, uint64_t *random) {
  uint64_t pick = next_random(random);
  switch (pick % KIND_COUNT) {
  case KIND_ZERO:
    memset(page, 0, PAGE_SIZE);
    break;
  case KIND_TEXT: {
    size_t at = 0;
    while (at < PAGE_SIZE) {
      const char *word = WORDS[next_random(random) % (sizeof WORDS / sizeof WORDS[0])];
      size_t length = strlen(word);
      if (length > PAGE_SIZE - at) length = PAGE_SIZE - at;
      memcpy(page + at, word, length);
      at += length;
    }
    break;
  }
  case KIND_RANDOM:
    for (size_t at = 0; at < PAGE_SIZE; at += 8) {
      uint64_t value = next_random(random);
      memcpy(page + at, &value, 8);
    }
    break;
  default: { /* a 1- to 16-byte pattern repeated over the page */
    uint8_t pattern[16];
    size_t period = 1 + (pick >> 8) % 16;
    for (size_t i = 0; i < period; i++) pattern[i] = (uint8_t)next_random(random);
    for (size_t at = 0; at < PAGE_SIZE; at++) page[at] = pattern[at % period];
  }
  }
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  unsigned long mib = mib_from_cmdline();
  size_t pages = mib * (1024 * 1024 / PAGE_SIZE);
  uint8_t *memory = mmap(NULL, pages * PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) {
    printf("dirtier: mmap of %lu MiB failed: %s\n", mib, strerror(errno));
    return 1;
  }
  uint64_t random = 0x9E3779B97F4A7C15ULL;
  for (size_t page = 0; page < pages; page++) fill_page(memory + page * PAGE_SIZE, &random);
  printf("dirtier: ready mib=%lu pages=%zu\n", mib, pages);

  const struct timespec tick = {0, TICK_NS};
  for (unsigned long count = 1;; count++) {
    for (int i = 0; i < DIRTY_PAGES_PER_TICK; i++) {
      size_t page = next_random(&random) % pages;
      fill_page(memory + page * PAGE_SIZE, &random);
    }
    printf("dirtier: tick %lu\n", count);
    nanosleep(&tick, NULL);
  }
}

// Deterministic page content: every kind a migration meets (all-zero, random, text-like,
// mixed), from a seeded generator so a run reproduces. Tests, benchmarks and the demo (when
// the shared corpus is absent) fill memory with it.

/** A small seeded PRNG (mulberry32): the same seed gives the same bytes on every run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Page kinds the conformance suite covers. */
export type PageKind = 'zero' | 'random' | 'text' | 'mixed';

export const PAGE_KINDS: readonly PageKind[] = ['zero', 'random', 'text', 'mixed'];

const WORDS = 'the page migration multifd channel packet zero normal dirty round guest memory block sync'.split(' ');

function fillRandom(page: Uint8Array, next: () => number): void {
  for (let i = 0; i < page.length; i++) page[i] = (next() * 256) | 0;
}

function fillText(page: Uint8Array, next: () => number): void {
  let at = 0;
  while (at < page.length) {
    const word = WORDS[(next() * WORDS.length) | 0]! + (next() < 0.1 ? '.\n' : ' ');
    for (let i = 0; i < word.length && at < page.length; i++) page[at++] = word.charCodeAt(i);
  }
}

/**
 * `count` pages of `pageSize` bytes of one kind, as views into one buffer. `mixed` cycles
 * zero, random, text and half-zero pages (a run of zeros then text), as guest RAM looks.
 */
export function makePages(kind: PageKind, count: number, pageSize: number, seed = 1): Uint8Array[] {
  const next = seededRandom(seed);
  const buffer = new Uint8Array(count * pageSize);
  const pages: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const page = buffer.subarray(i * pageSize, (i + 1) * pageSize);
    const pick = kind === 'mixed' ? (['zero', 'random', 'text', 'half'] as const)[i % 4] : kind;
    if (pick === 'random') fillRandom(page, next);
    else if (pick === 'text') fillText(page, next);
    else if (pick === 'half') fillText(page.subarray(pageSize / 2), next);
    pages.push(page);
  }
  return pages;
}

/** Fresh destination pages of `pageSize` bytes, each filled with `fill`. */
export function blankPages(count: number, pageSize: number, fill = 0): Uint8Array[] {
  const buffer = new Uint8Array(count * pageSize).fill(fill);
  return Array.from({ length: count }, (_, i) => buffer.subarray(i * pageSize, (i + 1) * pageSize));
}

/** Concatenates pages into one buffer (for comparisons and oracles). */
export function concatPages(pages: readonly Uint8Array[]): Uint8Array {
  const size = pages.reduce((sum, p) => sum + p.byteLength, 0);
  const out = new Uint8Array(size);
  let at = 0;
  for (const page of pages) {
    out.set(page, at);
    at += page.byteLength;
  }
  return out;
}

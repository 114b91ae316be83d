// What the demo's guest memory holds before the migration starts: the shared Silesia-like
// corpus repeated to fill it when ../shared/data has it (real, compressible bytes), else the
// library's generated page mix.
import { closeSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { sharedDataFile } from '../../benchmarks/data.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import { makePages } from '../workload/page-content.js';

/** Fills every block of `memory` and says with what. */
export function fillFromCorpus(memory: GuestMemory): string {
  let corpus: string | undefined;
  try {
    corpus = sharedDataFile('corpus-mix');
  } catch {
    corpus = undefined; // no zstd to decompress it: fall back to generated content
  }
  if (corpus) {
    fillMemoryFromFile(memory, corpus);
    return `filled from ${basename(corpus)} (repeated)`;
  }
  // 64 MiB of generated pages, repeated: generating each byte of a large memory would take seconds.
  const pattern = makePages('mixed', Math.min(memory.totalPages, (64 << 20) / memory.pageSize), memory.pageSize, 7);
  const bytes = new Uint8Array(pattern[0]!.buffer, 0, pattern.length * memory.pageSize);
  for (const block of memory.blocks) {
    const target = block.bytes();
    for (let at = 0; at < target.byteLength; at += bytes.byteLength) target.set(bytes.subarray(0, Math.min(bytes.byteLength, target.byteLength - at)), at);
  }
  return 'filled with generated pages, repeated (no ../shared/data/corpus-mix.bin.zst)';
}

/** Fills every block with the file's bytes, starting the file over whenever it ends. */
export function fillMemoryFromFile(memory: GuestMemory, path: string): void {
  const fd = openSync(path, 'r');
  try {
    for (const block of memory.blocks) {
      const bytes = block.bytes();
      for (let at = 0, position = 0; at < bytes.byteLength; ) {
        const read = readSync(fd, bytes, at, Math.min(16 << 20, bytes.byteLength - at), position);
        position = read === 0 ? 0 : position + read;
        at += read;
      }
    }
  } finally {
    closeSync(fd);
  }
}

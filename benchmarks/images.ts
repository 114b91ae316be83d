// Memory images for the side-by-side runs: one file per content and size in benchmarks/.cache/,
// which QEMU maps as its guest RAM and ours is filled from, so both move the same bytes. Every
// byte is written (no sparse holes): pages of a hole would be the kernel's shared zero page,
// which flatters every scan (DESIGN §8).
import { closeSync, existsSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { cacheDir, sharedDataFile, type SharedDataName } from './data.js';

/** What an image holds. */
export type ImageContent = 'corpus' | 'all-zero' | 'vm-512m-t0';

/** A memory image file and where its bytes came from. */
export interface MemoryImage {
  readonly content: ImageContent;
  readonly path: string;
  readonly bytes: number;
}

const SOURCES: Record<Exclude<ImageContent, 'all-zero'>, SharedDataName> = { corpus: 'corpus-mix', 'vm-512m-t0': 'vm-512m-t0' };
const VM_IMAGE_BYTES = 512 << 20;

/**
 * The image of `content`, `bytes` long (the VM image is always its own 512 MiB), made once:
 * the corpus repeated until the size is reached, or zeros. Undefined when the shared file it
 * needs is not there.
 */
export function memoryImage(content: ImageContent, bytes: number): MemoryImage | undefined {
  if (content === 'vm-512m-t0') {
    const path = sharedDataFile(SOURCES[content]);
    return path ? { content, path, bytes: VM_IMAGE_BYTES } : undefined;
  }
  const source = content === 'corpus' ? sharedDataFile(SOURCES.corpus) : null;
  if (source === undefined) return undefined;
  const path = join(cacheDir(), `image-${content}-${bytes / 2 ** 20}m.raw`);
  const fresh = existsSync(path) && statSync(path).size === bytes && (!source || statSync(path).mtimeMs >= statSync(source).mtimeMs);
  if (!fresh) writeImage(path, bytes, source);
  return { content, path, bytes };
}

/** Writes `bytes` of `source` repeated (zeros without a source) through a temporary name. */
function writeImage(path: string, bytes: number, source: string | null): void {
  const partial = path + '.partial';
  rmSync(partial, { force: true });
  const out = openSync(partial, 'w');
  const input = source ? openSync(source, 'r') : undefined;
  try {
    const chunk = new Uint8Array(16 << 20);
    for (let written = 0, position = 0; written < bytes; ) {
      let length = Math.min(chunk.byteLength, bytes - written);
      if (input !== undefined) {
        length = readSync(input, chunk, 0, length, position);
        if (length === 0) {
          position = 0;
          continue;
        }
        position += length;
      }
      written += writeSync(out, chunk, 0, length);
    }
  } finally {
    closeSync(out);
    if (input !== undefined) closeSync(input);
  }
  renameSync(partial, path);
}

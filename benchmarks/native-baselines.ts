// The native code our WASM is held against, measured in the same run on the same bytes (only
// ratios hold on a shared machine): the zstd and lz4 command-line tools' own -b benchmark
// modes on the sample file, node:zlib (Node's bundled C zlib) and Buffer.copy (memcpy) on the
// same in-memory packets, and a gcc -O3 zero-page scan in C. A missing tool gives a null
// result with the reason, never a failed run.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { cacheDir } from './data.js';
import { bestSeconds, megabytesPerSecond } from './timing.js';

/** One baseline measurement; null speeds come with the reason. */
export interface BaselineResult {
  readonly name: string;
  readonly compressMBps: number | null;
  readonly decompressMBps: number | null;
  /** Compression ratio the baseline reached (a check that both sides did the same work). */
  readonly ratio: number | null;
  readonly reason?: string;
}

/** `zstd -b<level>` or `lz4 -b<level>`, 512 KiB blocks, at least `seconds` per direction. */
export function cliBenchmark(tool: 'zstd' | 'lz4', level: number, samplePath: string, seconds: number): BaselineResult {
  const name = `${tool} -b${level}`;
  // -B524288 makes each 512 KiB packet its own independent block (frame for zstd), as our
  // codecs compress each packet on its own. --single-thread keeps zstd off its worker pool.
  const args = [`-q`, `-b${level}`, `-B${512 * 1024}`, `-i${seconds}`, ...(tool === 'zstd' ? ['--single-thread'] : []), samplePath];
  const result = spawnSync(tool, args, { encoding: 'utf8' });
  if (result.error) return missing(name, `${tool} not runnable: ${result.error.message}`);
  // With -q both tools print one summary line, "-1  <size> (<ratio>) <c> MB/s <d> MB/s  <file>":
  // zstd on stdout, lz4 on stderr. Their MB/s are decimal (bytes per microsecond).
  const output = `${result.stdout}\n${result.stderr}`;
  const line = /^-\d+\s+\d+\s+\(\s*([\d.]+)\)\s+([\d.]+) MB\/s\s+([\d.]+) MB\/s/m.exec(output);
  if (result.status !== 0 || !line) return missing(name, `${tool} ${args.join(' ')} gave no result: ${output.trim().slice(0, 200)}`);
  return { name, ratio: Number(line[1]), compressMBps: Number(line[2]), decompressMBps: Number(line[3]) };
}

/**
 * node:zlib raw deflate at `level` on each packet, timed like our codecs (best of
 * `repetitions` whole passes). Raw deflate because the deflate-family codecs differ only in
 * framing (zlib header, gzip members, per-page streams) around the same DEFLATE work.
 */
export function nodeZlibBaseline(packets: readonly Uint8Array[], level: number, repetitions: number): BaselineResult {
  const bytes = packets.length * (packets[0]?.byteLength ?? 0);
  let payloads: Buffer[] = [];
  const compress = bestSeconds(repetitions, () => {
    payloads = packets.map((packet) => deflateRawSync(packet, { level }));
  });
  const decompress = bestSeconds(repetitions, () => {
    for (const payload of payloads) inflateRawSync(payload);
  });
  const payloadBytes = payloads.reduce((sum, p) => sum + p.byteLength, 0);
  return {
    name: `node:zlib -${level}`,
    compressMBps: megabytesPerSecond(bytes, compress),
    decompressMBps: megabytesPerSecond(bytes, decompress),
    ratio: bytes / payloadBytes,
  };
}

/** Buffer.copy of each packet out and back: the ceiling for the `none` codec. */
export function memcpyBaseline(packets: readonly Uint8Array[], repetitions: number): BaselineResult {
  const packetBytes = packets[0]?.byteLength ?? 0;
  const bytes = packets.length * packetBytes;
  const sources = packets.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength));
  const wire = Buffer.alloc(bytes);
  const restored = Buffer.alloc(bytes);
  const compress = bestSeconds(repetitions, () => {
    sources.forEach((source, i) => source.copy(wire, i * packetBytes));
  });
  const decompress = bestSeconds(repetitions, () => {
    for (let at = 0; at < bytes; at += packetBytes) wire.copy(restored, at, at, at + packetBytes);
  });
  return { name: 'memcpy', compressMBps: megabytesPerSecond(bytes, compress), decompressMBps: megabytesPerSecond(bytes, decompress), ratio: 1 };
}

// The same shape as the AssemblyScript kernel (wasm/as/kernels.ts): sample three bytes, then
// OR 256-byte blocks of uint64_t with an early exit per block. The buffer is memset first so
// every page is backed by real memory, and the empty asm statements hide its contents from
// the optimizer so the scan cannot be folded away.
const ZERO_SCAN_C = String.raw`#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int is_zero(const unsigned char *p, size_t len) {
  if (p[0] | p[len / 2] | p[len - 1]) return 0;
  for (size_t off = 0; off < len; off += 256) {
    const uint64_t *q = (const uint64_t *)(p + off);
    uint64_t a = 0, b = 0;
    for (int i = 0; i < 16; i++) { a |= q[i]; b |= q[i + 16]; }
    if (a | b) return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  size_t bytes = strtoull(argv[1], NULL, 10), page = 4096, pages = bytes / page;
  int repetitions = atoi(argv[2]);
  unsigned char *buffer = aligned_alloc(4096, bytes);
  if (!buffer) return 2;
  memset(buffer, 0, bytes);
  double best = 1e30;
  for (int r = 0; r < repetitions; r++) {
    __asm__ volatile("" : : "r"(buffer) : "memory");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t zero = 0;
    for (size_t i = 0; i < pages; i++) zero += is_zero(buffer + i * page, page);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (zero != pages) return 3;
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (seconds < best) best = seconds;
  }
  printf("%.4f\n", (double)bytes / 1e9 / best);
  return 0;
}
`;

/** The C scan, compiled with `gcc -O3` into the cache, over `bytes` of zeros: GB/s or the reason it could not run. */
export function nativeZeroScan(bytes: number, repetitions: number): { GBps: number | null; reason?: string } {
  const source = join(cacheDir(), 'zero-scan.c');
  const binary = join(cacheDir(), 'zero-scan');
  writeFileSync(source, ZERO_SCAN_C);
  const build = spawnSync('gcc', ['-O3', '-o', binary, source], { encoding: 'utf8' });
  if (build.error) return { GBps: null, reason: `gcc not runnable: ${build.error.message}` };
  if (build.status !== 0) return { GBps: null, reason: `gcc -O3 failed: ${build.stderr.trim().slice(0, 200)}` };
  const run = spawnSync(binary, [String(bytes), String(repetitions)], { encoding: 'utf8' });
  const GBps = Number(run.stdout.trim());
  if (run.status !== 0 || !(GBps > 0)) return { GBps: null, reason: `native scan exited with ${run.status ?? run.signal}` };
  return { GBps };
}

function missing(name: string, reason: string): BaselineResult {
  return { name, compressMBps: null, decompressMBps: null, ratio: null, reason };
}

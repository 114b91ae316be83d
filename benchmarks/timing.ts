// Timing shared by every in-process measurement. On a shared, noisy machine the fastest of a
// few repetitions is the most repeatable figure (the noise only ever adds time), and it is
// also what zstd's and lz4's own -b modes report, so ours and theirs compare like for like.

/**
 * Seconds taken by the fastest of `repetitions` calls of `run`, after untimed calls for at
 * least `warmUpSeconds`. V8 first runs WASM through its baseline compiler and swaps in
 * optimized code only once a function has run a while and its background compile finished;
 * on a small sample every timed pass could otherwise still be in baseline code.
 */
export function bestSeconds(repetitions: number, run: () => void, warmUpSeconds = 0): number {
  const warmUpEnd = process.hrtime.bigint() + BigInt(Math.round(warmUpSeconds * 1e9));
  while (process.hrtime.bigint() < warmUpEnd) run();
  let best = Infinity;
  for (let i = 0; i < repetitions; i++) {
    const start = process.hrtime.bigint();
    run();
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    if (seconds < best) best = seconds;
  }
  return best;
}

/** The median of `values` (the lower middle one of an even count), for runs that each cost seconds. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1]!;
}

/** Decimal megabytes per second, as zstd and lz4 print them. */
export function megabytesPerSecond(bytes: number, seconds: number): number {
  return bytes / 1e6 / seconds;
}

/** Decimal gigabytes per second. */
export function gigabytesPerSecond(bytes: number, seconds: number): number {
  return bytes / 1e9 / seconds;
}

/** `value` rounded to `digits` decimals for printing and JSON; null stays null. */
export function round<T extends number | null>(value: T, digits: number): T {
  return (value === null ? null : Number(value.toFixed(digits))) as T;
}

/** The packet-sized views of `buffer` (its length a multiple of `packetBytes`). */
export function packetsOf(buffer: Uint8Array, packetBytes: number): Uint8Array[] {
  const packets: Uint8Array[] = [];
  for (let at = 0; at < buffer.byteLength; at += packetBytes) packets.push(buffer.subarray(at, at + packetBytes));
  return packets;
}

/** The page-sized views of `packet`. */
export function pagesOf(packet: Uint8Array, pageBytes: number): Uint8Array[] {
  const pages: Uint8Array[] = [];
  for (let at = 0; at < packet.byteLength; at += pageBytes) pages.push(packet.subarray(at, at + pageBytes));
  return pages;
}

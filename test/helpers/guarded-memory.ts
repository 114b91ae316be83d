// Destination blocks with guard regions, for fuzzing the receiver's write path. A receiver
// writes block page `p` at byte `p × pageSize` of the block's own shared memory, so nothing
// lies below a block: the guard is what follows it, up to the memory's end. Pages start zero,
// as fresh memory does, and a check after a run finds any byte written past the block or into
// a page no applied packet named.
import type { Destination, DestinationFactory } from '../../src/migration/destination.js';

/** Guard bytes after every block (at least; the memory is sized in 64 KiB WebAssembly pages). */
const GUARD_BYTES = 65536;

/** One destination block followed by a guard region of known bytes. */
export class GuardedBlock {
  readonly memory: WebAssembly.Memory;
  readonly byteLength: number;
  private readonly guard: Buffer;
  private readonly zeroPage: Buffer;

  constructor(readonly pageCount: number, readonly pageSize: number) {
    this.byteLength = pageCount * pageSize;
    const wasmPages = Math.ceil((this.byteLength + GUARD_BYTES) / 65536);
    this.memory = new WebAssembly.Memory({ initial: wasmPages, maximum: wasmPages, shared: true });
    const guard = Buffer.from(this.memory.buffer, this.byteLength);
    guard.forEach((_, i) => (guard[i] = (i * 131 + 0x5b) & 0xff)); // a pattern no decoder output is likely to repeat
    this.guard = Buffer.from(guard); // the expected bytes
    this.zeroPage = Buffer.alloc(pageSize);
  }

  /** Zeroes the block's pages again (the guard is never rewritten). */
  reset(): void {
    new Uint8Array(this.memory.buffer, 0, this.byteLength).fill(0);
  }

  /**
   * Throws unless the guard is intact and every page not marked in `named` (one byte per page)
   * is still zero.
   */
  check(name: string, named: Uint8Array): void {
    if (!Buffer.from(this.memory.buffer, this.byteLength).equals(this.guard)) throw new Error(`${name}: bytes past the block's end were written`);
    for (let p = 0; p < this.pageCount; p++) {
      if (!named[p] && !Buffer.from(this.memory.buffer, p * this.pageSize, this.pageSize).equals(this.zeroPage)) {
        throw new Error(`${name}: page ${p}, named by no packet, was written`);
      }
    }
  }
}

/** A receiver destination of guarded blocks shaped like the hello's; `onBlocks` receives them. */
export function guardedDestination(onBlocks: (blocks: GuardedBlock[]) => void): DestinationFactory {
  return async (hello): Promise<Destination> => {
    const blocks = hello.blocks.map((b) => new GuardedBlock(b.byteLength / hello.pageSize, hello.pageSize));
    onBlocks(blocks);
    return {
      targets: blocks.map((b) => ({ memory: b.memory })),
      async complete() {},
      async abort() {},
    };
  };
}

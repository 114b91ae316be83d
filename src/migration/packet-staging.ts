// Where a receiver assembles packets: fixed-size slots of one shared WebAssembly.Memory. The
// kernel reads a plain TCP channel's packet straight into its slot (other streams' chunks are
// copied there, the one user-space copy before the pages' own), and the worker that applies it
// reads the slot in place: it hashes a `none` payload there and copies the pages from there
// into guest memory. Slots are handed back when their packet is applied (or dropped), so a
// migration's packets reuse a few slots instead of costing fresh memory, and its page faults,
// each.

const WASM_PAGE_BYTES = 65536;

/** Packet slots in one growable shared memory. */
export class PacketStaging {
  readonly memory = new WebAssembly.Memory({ initial: 0, maximum: 65536, shared: true });
  private readonly slotBytes: number;
  private readonly free: number[] = [];

  /** `slotBytes`: the largest packet of the session (rounded up to whole WebAssembly pages). */
  constructor(slotBytes: number) {
    this.slotBytes = Math.ceil(slotBytes / WASM_PAGE_BYTES) * WASM_PAGE_BYTES;
  }

  /** Bytes the slots take, all of them (for memory accounting). */
  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /** A free slot's first `byteLength` bytes (at most the slot size); grows the memory by a slot when none is free. */
  take(byteLength: number): Uint8Array {
    if (byteLength > this.slotBytes) throw new RangeError(`a ${byteLength}-byte packet does not fit a ${this.slotBytes}-byte staging slot`);
    let byteOffset = this.free.pop();
    if (byteOffset === undefined) {
      byteOffset = this.memory.buffer.byteLength;
      this.memory.grow(this.slotBytes / WASM_PAGE_BYTES);
    }
    return new Uint8Array(this.memory.buffer, byteOffset, byteLength);
  }

  /** Hands back the slot that `bytes` (from {@link take}) lies in. */
  give(bytes: Uint8Array): void {
    this.free.push(bytes.byteOffset - (bytes.byteOffset % this.slotBytes));
  }
}

// Slots of 512 KiB (one QEMU packet's pages) in one shared WebAssembly.Memory, which each proxy
// keeps for the packets in its hands: the source proxy reads a QEMU packet's pages straight
// into a slot, where the worker pool scans and encodes them and from where a `none` packet's
// pages are written to the link; the destination proxy decodes a packet frame into a slot,
// hashes it there to verify it, and writes it to its QEMU from there. Each QEMU channel holds
// at most CHANNEL_WINDOW_PACKETS packets on either proxy, so that many slots per channel are
// always enough.

/** A fixed set of equal slots in one shared memory. */
export class PageSlots {
  readonly memory: WebAssembly.Memory;
  private readonly free: number[];

  constructor(
    count: number,
    readonly slotBytes: number,
  ) {
    const pages = Math.max(1, Math.ceil((count * slotBytes) / 65536));
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.free = Array.from({ length: count }, (_, i) => count - 1 - i);
  }

  /** A free slot's number. @throws Error when none is free: a caller broke its window. */
  take(): number {
    const slot = this.free.pop();
    if (slot === undefined) throw new Error('no free page slot, although every QEMU channel keeps to its window');
    return slot;
  }

  give(slot: number): void {
    this.free.push(slot);
  }

  byteOffset(slot: number): number {
    return slot * this.slotBytes;
  }

  /** The first `byteLength` bytes of a slot. */
  view(slot: number, byteLength: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, slot * this.slotBytes, byteLength);
  }
}

// Driving pool receive tasks directly, as a receiver does: packets in order on channel 0 into
// one block's shared memory.
import type { CodecSetting } from '../../src/pool/protocol.js';
import type { WorkerPool } from '../../src/pool/pool.js';
import type { ParsedPacket } from '../../src/wire/index.js';

/** Applies `packets` (transferring their buffers) to a block of `pageCount` pages in `memory`. */
export async function receivePackets(pool: WorkerPool, packets: readonly ParsedPacket[], memory: WebAssembly.Memory, pageCount: number, setting: CodecSetting): Promise<void> {
  const bits = () => new Int32Array(new SharedArrayBuffer(4 * Math.ceil(pageCount / 32)));
  const [received, writtenChunks, staleChunks] = [bits(), bits(), bits()];
  for (const [ordinal, packet] of packets.entries()) {
    await pool.receive({
      packet: packet.bytes.buffer,
      packetBytes: packet.bytes.byteLength,
      header: packet.header,
      channel: 0,
      ordinal,
      target: { memory },
      received,
      writtenChunks,
      staleChunks,
      ...setting,
    });
  }
}

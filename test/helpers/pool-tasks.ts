// Driving pool tasks directly, as a sender and a receiver do: a send task's packets as the
// bytes a channel carries, and packets applied in order on channel 0 into one block's shared
// memory.
import { HASH_UNIT_BYTES, fillZeroUnitHashes } from '../../src/memory/checksum.js';
import type { CodecSetting } from '../../src/pool/protocol.js';
import type { WorkerPool } from '../../src/pool/pool.js';
import type { SentPacket } from '../../src/pool/send-task.js';
import type { ParsedPacket } from '../../src/wire/index.js';
import { concat } from '../unit/wire/fixtures.js';

/** The bytes of a sent packet as they go out on a channel: its parts back to back. */
export function packetBytes(packet: SentPacket): Uint8Array {
  return concat(packet.parts);
}

/** Sessions of this helper (negative keys: a receiver's are positive). */
let sessions = 0;

/** Applies `packets` to a block of `pageCount` pages in `memory`, through a staging memory as a receiver does. */
export async function receivePackets(pool: WorkerPool, packets: readonly ParsedPacket[], memory: WebAssembly.Memory, pageCount: number, setting: CodecSetting): Promise<void> {
  const { pageSize } = setting;
  const bits = () => new Int32Array(new SharedArrayBuffer(4 * Math.ceil(pageCount / 32)));
  const [received, staleChunks] = [bits(), bits()];
  const units = (pageCount * pageSize) / HASH_UNIT_BYTES;
  const unitHashes = new Uint32Array(new SharedArrayBuffer(8 * units));
  fillZeroUnitHashes(unitHashes, 0, units);
  const largest = Math.max(1, ...packets.map((p) => p.bytes.byteLength));
  const staging = new WebAssembly.Memory({ initial: Math.ceil(largest / 65536), maximum: 65536, shared: true });
  const session = { key: -++sessions, staging, targets: [{ memory }], received: [received], unitHashes: [unitHashes], staleChunks: [staleChunks], ...setting };
  for (const [ordinal, packet] of packets.entries()) {
    new Uint8Array(staging.buffer).set(packet.bytes);
    await pool.receive(session, [{ byteOffset: 0, packetBytes: packet.bytes.byteLength, channel: 0, ordinal }]);
  }
}

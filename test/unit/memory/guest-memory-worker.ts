// Worker entry for guest-memory.test.ts: rebuilds a GuestMemory from its descriptor, reports
// what it sees, writes into it, and hashes it, all on the shared bytes.
import { parentPort, workerData } from 'node:worker_threads';
import { imageChecksum } from '../../../src/memory/checksum.js';
import { GuestMemory, type GuestMemoryDescriptor } from '../../../src/memory/guest-memory.js';

const memory = GuestMemory.fromDescriptor((workerData as { descriptor: GuestMemoryDescriptor }).descriptor);
const seen = memory.blocks.map((block) => block.page(1)[7]);
memory.blocks[2]!.page(0).fill(0x5a);
parentPort!.postMessage({
  names: memory.blocks.map((block) => block.name),
  seen,
  checksum: imageChecksum(memory),
});

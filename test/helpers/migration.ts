// End-to-end migration helpers for tests: guest memories with known content, and one call that
// runs a receiver and a sender over a real transport and returns both sides' outcomes.
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import { migrate, type MigrateOptions } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { makePages, type PageKind } from './pages.js';

/**
 * Registers on `test` a sender pool and a receiver pool of 2 workers each (as two hosts would
 * have), closed after the suite; the getters are valid inside its tests.
 */
export function useTwoPools(test: { before(fn: () => void): void; after(fn: () => Promise<void>): void }): { sender(): WorkerPool; receiver(): WorkerPool } {
  let sender: WorkerPool | undefined;
  let receiver: WorkerPool | undefined;
  test.before(() => {
    sender = new WorkerPool({ threads: 2 });
    receiver = new WorkerPool({ threads: 2 });
  });
  test.after(async () => {
    await sender?.close();
    await receiver?.close();
  });
  return { sender: () => sender!, receiver: () => receiver! };
}

/** A guest memory whose pages cycle through the page kinds (zero, random, text, half-zero). */
export function filledMemory(options: { pageSize?: number; blocks: { name: string; byteLength: number }[]; kind?: PageKind; seed?: number }): GuestMemory {
  const memory = GuestMemory.create({ pageSize: options.pageSize ?? 4096, blocks: options.blocks });
  memory.blocks.forEach((block, i) => {
    const pages = makePages(options.kind ?? 'mixed', block.pageCount, memory.pageSize, (options.seed ?? 1) + i);
    pages.forEach((page, p) => block.bytes().set(page, p * memory.pageSize));
  });
  return memory;
}

/** Runs one migration of `source` to a fresh receiver on `endpoint` (port 0 / a temp socket path). */
export async function migrateTo(
  endpoint: string,
  source: GuestMemory,
  options: Partial<MigrateOptions> & { pool?: WorkerPool } = {},
) {
  let destination: GuestMemory | undefined;
  const receiver = await listen(endpoint, { destination: memoryDestination((m) => (destination = m)), pool: options.pool });
  const sending = migrate({
    source: guestMemorySource(source),
    connect: () => connect(parseEndpoint(receiver.address)),
    ...options,
  });
  const [stats, result] = await Promise.allSettled([sending, receiver.result]);
  return { stats, result, destination: () => destination };
}

/** Whether two guest memories hold the same bytes, block by block. */
export function sameContent(a: GuestMemory, b: GuestMemory): boolean {
  return a.blocks.length === b.blocks.length && a.blocks.every((block, i) => Buffer.compare(block.bytes(), b.blocks[i]!.bytes()) === 0);
}

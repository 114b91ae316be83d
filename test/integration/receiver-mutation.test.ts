// The receiver against 10 000 seeded mutations of real packets, over TCP on 127.0.0.1: bit
// flips, truncations, header fields (counts, lengths, block, codec, flags, round) and run
// fields pushed off by a little or to extremes, payload bytes changed, slices cut out or junk
// put in. Half of them get their checksum recomputed, so they pass it and reach the field
// checks and the decoders behind it. Each mutated packet is a session of its own (a refused
// packet ends its migration) whose destination blocks are followed by guard regions: after
// every session the guards must be intact and every page no packet in the stream names must
// still be zero. Every outcome must be a typed error; a packet that decodes cleanly is applied
// and then refused at the image checksum (ERR_CHECKSUM_MISMATCH), which is typed too.
import { createServer, connect, type Server } from 'node:net';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { listCodecs } from '../../src/codecs/registry.js';
import type { CodecId } from '../../src/codecs/types.js';
import type { MigrationReceiver } from '../../src/migration/receiver.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { PacketReader, encodeSyncPacket } from '../../src/wire/index.js';
import { typedCode } from '../fuzz/engine.js';
import { GuardedBlock, guardedDestination } from '../helpers/guarded-memory.js';
import { makePages, seededRandom } from '../helpers/pages.js';
import { BLOCK_PAGES, PAGE, dataPacket, rawSession, type RawConnect } from '../helpers/raw-sender.js';
import { concat, resealPacket } from '../unit/wire/fixtures.js';

const test = suite('receiver under mutated packets');

const PACKETS = 10_000;
/** Sessions under way at once, each with its own listening socket. */
const SLOTS = 8;
/** Longest any one session may take before it counts as a hang. */
const SESSION_LIMIT_MS = 10_000;

let pool: WorkerPool;
const servers: Server[] = [];

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
});

test.after(async () => {
  for (const server of servers) server.close();
  await pool.close();
});

/** A listening socket on 127.0.0.1 that hands its connections to whichever receiver connected last. */
async function tcpSlot(): Promise<RawConnect> {
  let current: MigrationReceiver | undefined;
  const server = createServer((socket) => current!.accept(socket));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return (receiver) => {
    current = receiver;
    return connect(port, '127.0.0.1').setNoDelay(true);
  };
}

/**
 * Real packets: every codec's, with normal and zero runs, and one of zero runs only. Each is
 * sent in a session whose hello names its codec (a packet of another codec is refused from its
 * header, before a decoder could see it).
 */
const ORIGINALS: Array<{ codec: CodecId; bytes: Uint8Array }> = [
  ...listCodecs().map(({ id }, i) => ({
    codec: id,
    bytes: dataPacket(id, [{ first: 8 * i, count: 2 }, { first: 8 * i + 3, count: 1 }], makePages('mixed', 3, PAGE, i + 1), { zeroRuns: [{ first: 100 + i, count: 5 }] }),
  })),
  { codec: 'none', bytes: dataPacket('none', [], [], { zeroRuns: [{ first: 0, count: 16 }, { first: 200, count: 56 }] }) },
];

type Random = () => number;
const below = (random: Random, n: number) => Math.floor(random() * n);

/** Header fields as [offset, bytes] (docs/wire-format.md §4.1). */
const FIELDS: Array<[number, number]> = [[5, 1], [6, 2], [8, 4], [12, 4], [16, 8], [24, 2], [26, 2], [28, 4]];

/** A field value a little off, at an extreme, or random. */
function nudge(bytes: Uint8Array, offset: number, width: number, random: Random): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset);
  const max = 2 ** (8 * Math.min(width, 4)) - 1;
  const at = offset + width - Math.min(width, 4); // the low 4 bytes of a u64
  const old = width === 1 ? view.getUint8(at) : width === 2 ? view.getUint16(at) : view.getUint32(at);
  const choice = below(random, 4);
  const value = choice === 0 ? old + below(random, 33) - 16 : choice === 1 ? max : choice === 2 ? 0 : below(random, max + 1);
  const v = ((value % (max + 1)) + max + 1) % (max + 1);
  if (width === 1) view.setUint8(at, v);
  else if (width === 2) view.setUint16(at, v);
  else view.setUint32(at, v);
}

/** Normal plus zero runs, as the header counts them. */
function runCount(packet: Uint8Array): number {
  const view = new DataView(packet.buffer, packet.byteOffset);
  return view.getUint16(24) + view.getUint16(26);
}

const MUTATIONS: Record<string, (packet: Uint8Array, random: Random) => Uint8Array> = {
  'bit flips': (packet, random) => {
    for (let n = 1 + below(random, 3); n > 0; n--) packet[below(random, packet.byteLength)]! ^= 1 << below(random, 8);
    return packet;
  },
  truncation: (packet, random) => packet.slice(0, below(random, packet.byteLength)),
  'a header field': (packet, random) => {
    const [offset, width] = FIELDS[below(random, FIELDS.length)]!;
    nudge(packet, offset, width, random);
    return packet;
  },
  'a run field': (packet, random) => {
    nudge(packet, 40 + 8 * below(random, runCount(packet)) + 4 * below(random, 2), 4, random);
    return packet;
  },
  'payload bytes': (packet, random) => {
    const start = 40 + 8 * runCount(packet);
    if (start >= packet.byteLength) return MUTATIONS['bit flips']!(packet, random);
    for (let n = 1 + below(random, 4); n > 0; n--) packet[start + below(random, packet.byteLength - start)] = below(random, 256);
    return packet;
  },
  'a slice cut out or junk put in': (packet, random) => {
    const at = below(random, packet.byteLength);
    const junk = random() < 0.5 ? new Uint8Array(0) : Uint8Array.from({ length: 1 + below(random, 32) }, () => below(random, 256));
    const cut = junk.byteLength ? 0 : 1 + below(random, 64);
    const out = new Uint8Array(packet.byteLength - Math.min(cut, packet.byteLength - at) + junk.byteLength);
    out.set(packet.subarray(0, at));
    out.set(junk, at);
    out.set(packet.subarray(at + cut), at + junk.byteLength);
    return out;
  },
};

/** The i-th mutated packet: which mutation, the session's codec, and the bytes (checksum recomputed for half of them). */
function mutant(i: number, random: Random): { name: string; codec: CodecId; bytes: Uint8Array } {
  const names = Object.keys(MUTATIONS);
  const name = names[i % names.length]!;
  const { codec, bytes: original } = ORIGINALS[below(random, ORIGINALS.length)]!;
  let bytes = MUTATIONS[name]!(original.slice(), random);
  if (bytes.byteLength === original.byteLength && bytes.every((b, j) => b === original[j])) bytes[bytes.byteLength - 1]! ^= 0x80;
  if (random() < 0.5 && bytes.byteLength >= 40) bytes = resealPacket(bytes);
  return { name, codec, bytes };
}

/** One byte per page: the pages some packet of `stream` names, as the receiver's reader parses it. */
function namedPages(stream: Uint8Array): Uint8Array {
  const named = new Uint8Array(BLOCK_PAGES);
  const reader = new PacketReader({ channel: 0, pageSize: PAGE, pagesPerPacket: 128, blocks: [{ pageCount: BLOCK_PAGES }] });
  try {
    reader.push(stream);
    for (let packet = reader.next(); packet; packet = reader.next()) {
      for (const run of [...packet.header.normalRuns, ...packet.header.zeroRuns]) named.fill(1, run.first, run.first + run.count);
    }
  } catch {
    // the pages of the packets before the first bad one
  }
  return named;
}

/** Sends one mutated packet as round 1 of a session of `codec` and returns the typed error code it ended with. */
async function deliver(bytes: Uint8Array, codec: CodecId, connectTo: RawConnect, label: string): Promise<string> {
  let blocks: GuardedBlock[] = [];
  const session = await rawSession(pool, { codec, destination: guardedDestination((b) => (blocks = b)), connect: connectTo });
  const channel = session.openChannel(0);
  const sync = encodeSyncPacket(1, 1);
  channel.write(bytes);
  channel.end(sync);
  // A packet that passes everything is applied; the wrong image checksum then ends the session.
  await session.control.send({ type: 'round-end', round: 1, packets: 1 }).catch(() => {});
  await session.control.send({ type: 'complete', rounds: 1, checksum: 0n }).catch(() => {});
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    session.receiver.result.then(
      () => new Error(`${label} completed a migration`),
      (error: unknown) => error,
    ),
    new Promise<Error>((resolve) => (timer = setTimeout(() => resolve(new Error(`${label}: no outcome within ${SESSION_LIMIT_MS} ms`)), SESSION_LIMIT_MS))),
  ]);
  clearTimeout(timer);
  session.control.socket.destroy();
  channel.destroy();
  const code = typedCode(outcome);
  if (code === undefined) throw new Error(`${label}: not a typed error`, { cause: outcome });
  const named = namedPages(concat([bytes, sync]));
  blocks.forEach((block) => block.check(label, named));
  return code;
}

test(`${PACKETS} seeded mutations of real packets over TCP: typed errors only, no write outside a block or into an unnamed page, no hang`, async () => {
  const random = seededRandom(0x10_000);
  const mutants = Array.from({ length: PACKETS }, (_, i) => mutant(i, random));
  const codes = new Map<string, number>();
  const started = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: SLOTS }, async () => {
      const connectTo = await tcpSlot();
      for (let i = next++; i < PACKETS; i = next++) {
        const code = await deliver(mutants[i]!.bytes, mutants[i]!.codec, connectTo, `mutation ${i} (${mutants[i]!.name})`);
        codes.set(code, (codes.get(code) ?? 0) + 1);
      }
    }),
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  const histogram = [...codes].sort((a, b) => b[1] - a[1]).map(([c, n]) => `${c} ${n}`).join(', ');
  console.log(`  mutation loop: ${PACKETS} mutated packets over TCP in ${seconds} s, typed errors only: ${histogram}`);
  for (const code of ['ERR_PACKET_CHECKSUM', 'ERR_PACKET_PAGE_INDEX', 'ERR_PACKET_COUNT', 'ERR_PACKET_PAYLOAD_LENGTH', 'ERR_CODEC_CORRUPT', 'ERR_CHECKSUM_MISMATCH']) {
    assert.ok(codes.has(code), `the loop reached ${code} (seen: ${histogram})`);
  }
});

test.run();

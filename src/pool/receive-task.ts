// The receiver's unit of work, run on a pool worker: one packet whose header the main thread
// has validated, read in place from the receiver's shared staging memory. Nothing reaches
// guest memory before the packet's checksum matches: the payload is decoded into scratch
// (a `none` payload already is the pages), the decoded pages' 4 KiB units are hashed once,
// the hashes must give the packet's checksum, and only then are the pages copied into place
// and their hashes written into the block's unit-hash table, from which the receiver builds
// the image checksum without reading the pages again. Zero pages follow QEMU's receive bitmap
// rule: a page never written in this migration is still zero in fresh memory (or a sparse
// file) and is left alone; one written before is cleared, because a page can go normal →
// zero between rounds.
import { writeSync } from 'node:fs';
import { codecByWireId } from '../codecs/registry.js';
import type { PacketDecoder } from '../codecs/types.js';
import { CodecError } from '../errors.js';
import { CHECKSUM_CHUNK_BYTES, HASH_UNIT_BYTES, fillZeroUnitHashes, unitHashes } from '../memory/checksum.js';
import { readValidatedHeader, runsPageCount, verifyPacketChecksum, type PacketHeader, type PageRun } from '../wire/index.js';
import type { BlockTarget, ReceiveSession, StagedPacket } from './protocol.js';

/** Decoded pages of compressed packets, in a shared memory the hash kernel reads in place. */
let decodeArea: WebAssembly.Memory | undefined;
let hashes = new Uint32Array(0);
let zeroPage = new Uint8Array(0);

/** Sets bit `index`; returns whether it was set before. Atomic: neighbouring pages may be on other workers. */
function setBit(bits: Int32Array, index: number): boolean {
  const bit = 1 << (index & 31);
  return (Atomics.or(bits, index >>> 5, bit) & bit) !== 0;
}

/** The bitmaps and table of one block that a write updates (see ReceiveSession). */
export interface AppliedPages {
  received: Int32Array;
  unitHashes: Uint32Array;
  staleChunks: Int32Array;
  pageSize: number;
}

/** Block `blockIndex`'s share of `session`: what writing its pages updates. */
export function blockPages(session: ReceiveSession, blockIndex: number): AppliedPages {
  return {
    received: session.received[blockIndex]!,
    unitHashes: session.unitHashes[blockIndex]!,
    staleChunks: session.staleChunks[blockIndex]!,
    pageSize: session.pageSize,
  };
}

/** Marks the checksum chunks holding pages `first .. first + count - 1` as changed since hashed. */
function markStale(applied: AppliedPages, first: number, count: number): void {
  const { pageSize } = applied;
  const firstChunk = Math.floor((first * pageSize) / CHECKSUM_CHUNK_BYTES);
  const lastChunk = Math.floor(((first + count) * pageSize - 1) / CHECKSUM_CHUNK_BYTES);
  for (let chunk = firstChunk; chunk <= lastChunk; chunk++) setBit(applied.staleChunks, chunk);
}

function writeFilePages(target: { fd: number; byteOffset: number }, page: number, bytes: Uint8Array, pageSize: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(target.fd, bytes, done, bytes.byteLength - done, target.byteOffset + page * pageSize + done);
  }
}

/** Where a packet's decoded pages are: `bytes` bytes at `byteOffset` of `memory`. */
interface DecodedPages {
  memory: WebAssembly.Memory;
  byteOffset: number;
  bytes: number;
}

/** Decodes the payload into the worker's decode area (a `none` payload is used where it is). */
function decodePayload(session: ReceiveSession, packet: StagedPacket, header: PacketHeader, decoder: PacketDecoder, normalPages: number): DecodedPages {
  const { pageSize } = session;
  const bytes = normalPages * pageSize;
  const payloadOffset = packet.byteOffset + packet.packetBytes - header.payloadLength;
  const payload = new Uint8Array(session.staging.buffer, payloadOffset, header.payloadLength);
  try {
    if (codecByWireId(header.codecWireId)?.info.payloadIsPages) {
      if (header.payloadLength !== bytes) {
        throw new CodecError('ERR_CODEC_SIZE_MISMATCH', `none decode failed: payload of ${header.payloadLength} bytes (expected ${bytes} bytes)`);
      }
      return { memory: session.staging, byteOffset: payloadOffset, bytes };
    }
    if (!decodeArea || decodeArea.buffer.byteLength < bytes) {
      decodeArea = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
    }
    const area = decodeArea;
    const before = decoder.hardwarePages ?? 0;
    decoder.decode(payload, Array.from({ length: normalPages }, (_, i) => new Uint8Array(area.buffer, i * pageSize, pageSize)));
    if (session.hardwarePages) Atomics.add(session.hardwarePages, 0, (decoder.hardwarePages ?? 0) - before);
    return { memory: area, byteOffset: 0, bytes };
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    // Name where it happened, as every receiver error does.
    throw new CodecError(error.code, `channel ${packet.channel}, packet ${packet.ordinal}: ${error.message}`, {
      cause: error,
      context: { channel: packet.channel, packet: packet.ordinal, field: 'payload', expected: `${bytes} bytes of pages`, got: error.message },
    });
  }
}

/** Verifies one packet of `session`, read in place from its staging memory, and applies it to its block. */
export function runReceiveTask(session: ReceiveSession, packet: StagedPacket, decoderOf: (wireId: number) => PacketDecoder): void {
  const { pageSize } = session;
  const header = readValidatedHeader(new Uint8Array(session.staging.buffer, packet.byteOffset, packet.packetBytes));
  const normalPages = runsPageCount(header.normalRuns);
  const decoded = decodePayload(session, packet, header, decoderOf(header.codecWireId), normalPages);
  const units = decoded.bytes / HASH_UNIT_BYTES;
  if (hashes.length < 2 * units) hashes = new Uint32Array(2 * units);
  const packetHashes = hashes.subarray(0, 2 * units);
  if (units) unitHashes(decoded.memory, decoded.byteOffset, decoded.bytes, packetHashes);
  const headerBytes = packet.packetBytes - header.payloadLength;
  verifyPacketChecksum(new Uint8Array(session.staging.buffer, packet.byteOffset, headerBytes), packetHashes, packet.channel, packet.ordinal);

  const target = session.targets[header.blockIndex]!;
  const applied = blockPages(session, header.blockIndex);
  const unitsPerPage = pageSize / HASH_UNIT_BYTES;
  let at = 0;
  for (const run of header.normalRuns) {
    const source = new Uint8Array(decoded.memory.buffer, decoded.byteOffset + at * pageSize, run.count * pageSize);
    if ('memory' in target) new Uint8Array(target.memory.buffer).set(source, run.first * pageSize);
    else writeFilePages(target, run.first, source, pageSize);
    applied.unitHashes.set(packetHashes.subarray(2 * at * unitsPerPage, 2 * (at + run.count) * unitsPerPage), 2 * run.first * unitsPerPage);
    for (let p = run.first; p < run.first + run.count; p++) setBit(applied.received, p);
    markStale(applied, run.first, run.count);
    at += run.count;
  }
  for (const run of header.zeroRuns) applyZeroRun(target, applied, run);
}

/** Applies one zero run under the receive-bitmap rule (also used for legacy zero pages on the main thread). */
export function applyZeroRun(target: BlockTarget, applied: AppliedPages, run: PageRun): void {
  const { pageSize } = applied;
  const unitsPerPage = pageSize / HASH_UNIT_BYTES;
  for (let p = run.first; p < run.first + run.count; p++) {
    if (!setBit(applied.received, p)) continue; // never written: still zero, its hash already the zero unit's
    markStale(applied, p, 1);
    fillZeroUnitHashes(applied.unitHashes, p * unitsPerPage, unitsPerPage);
    if ('memory' in target) {
      new Uint8Array(target.memory.buffer, p * pageSize, pageSize).fill(0);
    } else {
      if (zeroPage.byteLength !== pageSize) zeroPage = new Uint8Array(pageSize);
      writeFilePages(target, p, zeroPage, pageSize);
    }
  }
}

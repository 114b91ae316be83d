// Shared by the wire tests: building packets and frames (valid or deliberately not), feeding
// readers in chunks, and asserting that an error is a ProtocolError that says where and what.
import * as assert from 'uvu/assert';
import { ProtocolError } from '../../../src/errors.js';
import { unitHashesOfBytes } from '../../../src/memory/checksum.js';
import { checksum64 } from '../../../src/wasm/kernels.js';
import {
  ControlReader,
  PROTOCOL_VERSION,
  PacketReader,
  packetChecksum,
  packetHeaderBytes,
  verifyPacketChecksum,
  writePacket,
  type ControlMessage,
  type PacketHeader,
  type ParsedPacket,
} from '../../../src/wire/index.js';

export const PAGE = 4096;
export const SESSION = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

/** Channel 3 of a session with a 256-page block, a 2^32-page block and pagesPerPacket 8. */
export const SESSION_BLOCKS = [{ pageCount: 256 }, { pageCount: 2 ** 32 }];
export const PAGES_PER_PACKET = 8;

export function newPacketReader(): PacketReader {
  return new PacketReader({ channel: 3, pageSize: PAGE, pagesPerPacket: PAGES_PER_PACKET, blocks: SESSION_BLOCKS });
}

/** A data packet header with defaults: codec none, block 0, round 1. */
export function header(fields: Partial<PacketHeader>): PacketHeader {
  return {
    codecWireId: 0,
    flags: 0,
    blockIndex: 0,
    round: 1,
    sequence: 0,
    normalRuns: [],
    zeroRuns: [],
    payloadLength: 0,
    ...fields,
  };
}

/**
 * A framed packet carrying `payload` (its length overrides `h.payloadLength`), its checksum
 * sealed with the unit hashes of `pages` (the pages the payload decodes to; for codec none
 * the payload itself; none when its length is not whole pages).
 */
export function buildPacket(h: PacketHeader, payload: Uint8Array = new Uint8Array(0), pages: Uint8Array = payload): Uint8Array {
  const at = packetHeaderBytes(h.normalRuns, h.zeroRuns);
  const out = new Uint8Array(at + payload.byteLength);
  out.set(payload, at);
  writePacket(out, { ...h, payloadLength: payload.byteLength }, payload.byteLength, pageHashes(pages));
  return out;
}

/** The unit hashes of `pages` (empty unless they are whole 4 KiB units). */
export function pageHashes(pages: Uint8Array): Uint32Array {
  return pages.byteLength % PAGE === 0 ? unitHashesOfBytes(pages) : new Uint32Array(0);
}

/** Verifies a parsed packet's checksum as a receiver does, given the pages its payload decodes to (default: the payload, codec none). */
export function verifyParsed(parsed: ParsedPacket, pages: Uint8Array = parsed.bytes.subarray(parsed.payloadOffset), channel = 3, ordinal = 0): void {
  verifyPacketChecksum(parsed.bytes.subarray(0, parsed.payloadOffset), pageHashes(pages), channel, ordinal);
}

/** `length` bytes of a deterministic pattern, e.g. a raw (`none`) payload. */
export function pattern(length: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed * 17 + (i >> 8)) & 0xff);
}

/** Concatenates byte arrays. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** Splits `bytes` at the given cut points (any order, duplicates allowed). */
export function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set([0, ...cuts.filter((c) => c > 0 && c < bytes.byteLength), bytes.byteLength])].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  for (let i = 1; i < points.length; i++) chunks.push(bytes.subarray(points[i - 1]!, points[i]!));
  return chunks;
}

interface StreamReader<T> {
  push(chunk: Uint8Array): void;
  next(): T | undefined;
  end(): void;
}

/**
 * Pushes each chunk, drains `next()` after each, then ends the stream; returns everything
 * read. A reader that keeps returning items past one per header's worth of bytes fails the
 * test instead of hanging it.
 */
export function readAll<T>(reader: StreamReader<T>, chunks: readonly Uint8Array[]): T[] {
  const items: T[] = [];
  const limit = chunks.reduce((n, c) => n + c.byteLength, 0) / 20 + 2;
  for (const chunk of chunks) {
    reader.push(chunk);
    for (let item = reader.next(); item !== undefined; item = reader.next()) {
      items.push(item);
      if (items.length > limit) throw new Error('reader produced more items than bytes allow: a loop that does not consume');
    }
  }
  reader.end();
  return items;
}

export const readPackets = (chunks: readonly Uint8Array[]): ParsedPacket[] => readAll(newPacketReader(), chunks);
export const readControl = (chunks: readonly Uint8Array[]): ControlMessage[] => readAll(new ControlReader(), chunks);

/**
 * Asserts that `fn` throws a ProtocolError with `code` whose details name the channel, the
 * packet, the field and expected/got; `details` pins any of them exactly.
 */
export function throwsProtocol(fn: () => unknown, code: string, details: Record<string, unknown> = {}): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.instance(caught, ProtocolError, `expected ${code}, got ${String(caught)}`);
  const error = caught as ProtocolError;
  assert.is(error.code, code, error.message);
  for (const key of ['channel', 'field', 'expected', 'got']) {
    assert.ok(error.context[key] !== undefined && error.context[key] !== '', `details.${key} is set (${error.message})`);
  }
  for (const [key, value] of Object.entries(details)) assert.is(error.context[key], value, `details.${key} (${error.message})`);
  return error;
}

/** Rewrites a packet's checksum after a test patched its bytes (the reader ignores it; workers do not). */
export function resealPacket(packet: Uint8Array): Uint8Array {
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  const headerBytes = 40 + 8 * (view.getUint16(24) + view.getUint16(26));
  view.setBigUint64(32, packetChecksum(packet.subarray(0, headerBytes), pageHashes(packet.subarray(headerBytes))));
  return packet;
}

/** Rewrites a control frame's checksum after a test patched its head or body. */
export function resealFrame(frame: Uint8Array): Uint8Array {
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  view.setBigUint64(frame.byteLength - 8, checksum64(frame.subarray(0, frame.byteLength - 8)));
  return frame;
}

/** A control frame of `type` around an arbitrary `body`, with a correct checksum. */
export function rawFrame(type: number, body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(12 + body.byteLength + 8);
  const view = new DataView(frame.buffer);
  view.setUint32(0, 0x4d464443);
  view.setUint8(4, PROTOCOL_VERSION);
  view.setUint8(5, type);
  view.setUint32(8, body.byteLength);
  frame.set(body, 12);
  return resealFrame(frame);
}

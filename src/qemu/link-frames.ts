// The link between a source proxy and a destination proxy (docs/qemu-proxy.md): framed
// messages on one link control connection and K link data connections. Every frame is a
// 20-byte header and a body, sealed by XXH64, and checked before its body is used: a proxy
// that forwarded a corrupt frame would hand a QEMU bytes its peer never sent. The checksum
// covers the header and the whole body, but for a packet frame only its leading fields: the
// multifd packets after them seal themselves (checksum over their header and the unit hashes
// of their decoded pages), so the pages are neither copied into the frame nor hashed twice.
import { ProtocolError } from '../errors.js';
import { checksum64 } from '../wasm/kernels.js';
import { ByteReader, ByteWriter } from '../wire/byte-cursor.js';
import { hex } from '../wire/constants.js';
import { FrameReader } from '../wire/stream-reader.js';

/** First 4 bytes of every link frame: "MFQL". */
export const LINK_MAGIC = 0x4d46514c;

/** The link format's version; a peer with another is refused at its first frame. */
export const LINK_VERSION = 2;

/** Bytes of a frame header: magic u32, version u8, type u8, sealed u16, body length u32, checksum u64. */
export const LINK_HEADER_BYTES = 20;

/** The largest body: one QEMU packet's pages (512 KiB) encoded, its header fields and slack. */
export const MAX_LINK_BODY = 2 * 1024 * 1024;

const SEALED_OFFSET = 6;
const CHECKSUM_OFFSET = 12;

/** Frame types; each names the connection it may travel on in docs/qemu-proxy.md. */
export const LinkFrame = {
  /** control, source → destination: the session (JSON). */
  hello: 1,
  /** control, destination → source: the session accepted (JSON). */
  helloOk: 2,
  /** data, source → destination: which session and link channel this connection is (JSON). */
  dataHello: 3,
  /** control, both ways: bytes of QEMU's main channel, in order. */
  main: 4,
  /** control, both ways: the QEMU on this side closed its main channel's sending side. */
  mainEnd: 5,
  /** control, source → destination: a QEMU multifd channel's 64-byte init, verbatim. */
  init: 6,
  /** data, source → destination: one QEMU packet (see packet-frame.ts). */
  packet: 7,
  /** control, destination → source: u8 QEMU channel, u32 packets written to the destination QEMU so far. */
  credit: 8,
  /** control, source → destination: u8 QEMU channel, u32 packets it carried in all: the source QEMU closed it. */
  channelEnd: 9,
  /** control, both ways: the peer failed (JSON: side, code, message). */
  error: 10,
  /** control, source → destination: everything is over on both QEMU sides; close. */
  bye: 11,
} as const;

/** A frame type's number. */
export type LinkFrameType = (typeof LinkFrame)[keyof typeof LinkFrame];

const TYPE_NAMES = new Map<number, string>(Object.entries(LinkFrame).map(([name, type]) => [type, name]));

/** A frame as read: its type and body (a copy the caller owns). */
export interface LinkFrameItem {
  type: LinkFrameType;
  body: Uint8Array;
  /** Body bytes the checksum covered: all of them but in a packet frame, whose multifd packets follow. */
  sealed: number;
}

/** A ProtocolError about the link, naming the link connection (`control` or `data N`). */
export function linkError(code: string, connection: string, field: string, expected: string | number, got: string | number): ProtocolError {
  return new ProtocolError(code, `link ${connection}: ${field}: expected ${expected}, got ${got}`, {
    context: { channel: connection, field, expected, got },
  });
}

/** One frame's bytes: header then `body`, sealed whole. */
export function encodeLinkFrame(type: LinkFrameType, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = frameHead(type, body.byteLength, 0);
  out.set(body, LINK_HEADER_BYTES);
  return seal(out);
}

/**
 * A packet frame as the buffers to write, in order: the header with `fields` (sealed), then
 * the multifd packets' bytes as they are (`tail`: each seals itself), never copied.
 */
export function encodePacketFrame(fields: Uint8Array, tail: readonly Uint8Array[]): Uint8Array[] {
  const tailBytes = tail.reduce((n, part) => n + part.byteLength, 0);
  if (fields.byteLength === 0 || fields.byteLength > 0xffff) throw new RangeError(`packet frame fields of ${fields.byteLength} bytes: 1 to 65535`);
  const head = frameHead(LinkFrame.packet, fields.byteLength + tailBytes, fields.byteLength);
  head.set(fields, LINK_HEADER_BYTES);
  return [seal(head), ...tail];
}

/** A frame header for a body of `length` bytes, with room for the first `sealed` of them (0: all). */
function frameHead(type: LinkFrameType, length: number, sealed: number): Uint8Array {
  if (length > MAX_LINK_BODY) throw new RangeError(`link frame body of ${length} bytes exceeds ${MAX_LINK_BODY}`);
  const out = new Uint8Array(LINK_HEADER_BYTES + (sealed || length));
  const w = new ByteWriter(out);
  w.u32(LINK_MAGIC, 'magic');
  w.u8(LINK_VERSION, 'version');
  w.u8(type, 'type');
  w.u16(sealed, 'sealed');
  w.u32(length, 'length');
  return out;
}

/** Writes the checksum of `head` (the header, checksum zero, and the sealed body bytes) into it. */
function seal(head: Uint8Array): Uint8Array {
  new DataView(head.buffer, head.byteOffset).setBigUint64(CHECKSUM_OFFSET, checksum64(head));
  return head;
}

/** A frame whose body is JSON. */
export function encodeJsonFrame(type: LinkFrameType, value: unknown): Uint8Array {
  return encodeLinkFrame(type, new TextEncoder().encode(JSON.stringify(value)));
}

/** A frame body read as a JSON object. */
export function parseJsonBody(item: LinkFrameItem, connection: string): Record<string, unknown> {
  try {
    const value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(item.body)) as unknown;
    if (value && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw linkError('ERR_LINK_FIELD', connection, `${linkFrameName(item.type)} body`, 'a JSON object', `${item.body.byteLength} other bytes`);
}

/** A frame type's name for messages. */
export function linkFrameName(type: number): string {
  return TYPE_NAMES.get(type) ?? `type ${type}`;
}

/** The (channel u8, count u32) body of credit and channelEnd frames. */
export function encodeChannelCount(type: typeof LinkFrame.credit | typeof LinkFrame.channelEnd, channel: number, count: number): Uint8Array {
  const body = new Uint8Array(5);
  const w = new ByteWriter(body);
  w.u8(channel, 'channel');
  w.u32(count, 'count');
  return encodeLinkFrame(type, body);
}

/** Reads a credit or channelEnd body. */
export function parseChannelCount(item: LinkFrameItem, connection: string): { channel: number; count: number } {
  if (item.body.byteLength !== 5) throw linkError('ERR_LINK_FIELD', connection, `${linkFrameName(item.type)} body`, '5 bytes', `${item.body.byteLength} bytes`);
  const r = new ByteReader(item.body);
  return { channel: r.u8('channel'), count: r.u32('count') };
}

/**
 * Reads link frames from one connection fed in chunks split at any byte: magic, version,
 * a known type, its sealed length (0 but for a packet frame, which seals 1 to `length` of its
 * bytes), the body length at most {@link MAX_LINK_BODY}, then the checksum over the header
 * and the sealed bytes before the frame is handed over.
 * @throws ProtocolError `ERR_LINK_MAGIC`, `ERR_LINK_VERSION`, `ERR_LINK_TYPE`,
 * `ERR_LINK_LENGTH`, `ERR_LINK_CHECKSUM`; `ERR_LINK_TRUNCATED` from `end()`.
 */
export class LinkFrameReader extends FrameReader<LinkFrameItem> {
  /** `connection` names the link connection in errors: `control`, `data 2`. */
  constructor(private readonly connection: string) {
    super(LINK_HEADER_BYTES);
  }

  protected finish(frame: Uint8Array): LinkFrameItem {
    const view = new DataView(frame.buffer);
    const body = frame.byteLength - LINK_HEADER_BYTES;
    const sealed = view.getUint16(SEALED_OFFSET) || body;
    const stored = view.getBigUint64(CHECKSUM_OFFSET);
    view.setBigUint64(CHECKSUM_OFFSET, 0n);
    const actual = checksum64(frame.subarray(0, LINK_HEADER_BYTES + sealed));
    if (actual !== stored) throw linkError('ERR_LINK_CHECKSUM', this.connection, 'checksum', hex(actual, 16), hex(stored, 16));
    return { type: frame[5] as LinkFrameType, body: frame.subarray(LINK_HEADER_BYTES), sealed };
  }

  protected truncated(bufferedBytes: number): ProtocolError {
    return linkError('ERR_LINK_TRUNCATED', this.connection, 'frame', `${this.neededBytes} bytes`, `${bufferedBytes} bytes before the end`);
  }

  /** Validates a frame header; returns the frame's length. */
  protected checkHead(head: Uint8Array): number {
    const r = new ByteReader(head);
    const magic = r.u32('magic');
    if (magic !== LINK_MAGIC) throw linkError('ERR_LINK_MAGIC', this.connection, 'magic', hex(LINK_MAGIC, 8), hex(magic, 8));
    const version = r.u8('version');
    if (version !== LINK_VERSION) throw linkError('ERR_LINK_VERSION', this.connection, 'version', LINK_VERSION, version);
    const type = r.u8('type');
    if (!TYPE_NAMES.has(type)) throw linkError('ERR_LINK_TYPE', this.connection, 'type', `1 to ${TYPE_NAMES.size}`, type);
    const sealed = r.u16('sealed');
    const length = r.u32('length');
    if (length > MAX_LINK_BODY) throw linkError('ERR_LINK_LENGTH', this.connection, 'length', `<= ${MAX_LINK_BODY}`, length);
    if (type !== LinkFrame.packet && sealed !== 0) throw linkError('ERR_LINK_FIELD', this.connection, `${linkFrameName(type)} sealed`, 0, sealed);
    if (type === LinkFrame.packet && (sealed === 0 || sealed > length)) throw linkError('ERR_LINK_FIELD', this.connection, 'packet sealed', `1 to ${length}`, sealed);
    return LINK_HEADER_BYTES + length;
  }
}

// The link between a source proxy and a destination proxy (docs/qemu-proxy.md): framed
// messages on one link control connection and K link data connections. Every frame is a
// 20-byte header and a body, sealed by XXH64 over both, and checked before its body is used:
// a proxy that forwarded a corrupt frame would hand a QEMU bytes its peer never sent.
import { ProtocolError } from '../errors.js';
import { checksum64 } from '../wasm/kernels.js';
import { ByteReader, ByteWriter } from '../wire/byte-cursor.js';
import { hex } from '../wire/constants.js';
import { StreamReader } from '../wire/stream-reader.js';

/** First 4 bytes of every link frame: "MFQL". */
export const LINK_MAGIC = 0x4d46514c;

/** The link format's version; a peer with another is refused at its first frame. */
export const LINK_VERSION = 1;

/** Bytes of a frame header: magic u32, version u8, type u8, reserved u16, body length u32, checksum u64. */
export const LINK_HEADER_BYTES = 20;

/** The largest body: one QEMU packet's pages (512 KiB) encoded, its header fields and slack. */
export const MAX_LINK_BODY = 2 * 1024 * 1024;

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
}

/** A ProtocolError about the link, naming the link connection (`control` or `data N`). */
export function linkError(code: string, connection: string, field: string, expected: string | number, got: string | number): ProtocolError {
  return new ProtocolError(code, `link ${connection}: ${field}: expected ${expected}, got ${got}`, {
    context: { channel: connection, field, expected, got },
  });
}

/** One frame's bytes: header then `body`, sealed. */
export function encodeLinkFrame(type: LinkFrameType, body: Uint8Array = new Uint8Array(0)): Uint8Array {
  if (body.byteLength > MAX_LINK_BODY) throw new RangeError(`link frame body of ${body.byteLength} bytes exceeds ${MAX_LINK_BODY}`);
  const out = new Uint8Array(LINK_HEADER_BYTES + body.byteLength);
  const w = new ByteWriter(out);
  w.u32(LINK_MAGIC, 'magic');
  w.u8(LINK_VERSION, 'version');
  w.u8(type, 'type');
  w.u16(0, 'reserved');
  w.u32(body.byteLength, 'length');
  out.set(body, LINK_HEADER_BYTES);
  new DataView(out.buffer).setBigUint64(CHECKSUM_OFFSET, checksum64(out));
  return out;
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
 * a known type, the body length at most {@link MAX_LINK_BODY}, then the checksum over the
 * whole frame before the frame is handed over.
 * @throws ProtocolError `ERR_LINK_MAGIC`, `ERR_LINK_VERSION`, `ERR_LINK_TYPE`,
 * `ERR_LINK_LENGTH`, `ERR_LINK_CHECKSUM`; `ERR_LINK_TRUNCATED` from `end()`.
 */
export class LinkFrameReader extends StreamReader<LinkFrameItem> {
  private readonly header = new Uint8Array(LINK_HEADER_BYTES);
  private headerFilled = 0;
  private assembling: { frame: Uint8Array; filled: number } | undefined;

  /** `connection` names the link connection in errors: `control`, `data 2`. */
  constructor(private readonly connection: string) {
    super();
  }

  protected step(): LinkFrameItem | undefined {
    if (!this.assembling) {
      this.headerFilled = this.queue.fill(this.header, this.headerFilled, LINK_HEADER_BYTES);
      if (this.headerFilled < LINK_HEADER_BYTES) return undefined;
      this.headerFilled = 0;
      const length = this.checkHeader();
      const frame = new Uint8Array(LINK_HEADER_BYTES + length);
      frame.set(this.header);
      this.assembling = { frame, filled: LINK_HEADER_BYTES };
    }
    const a = this.assembling;
    a.filled = this.queue.fill(a.frame, a.filled, a.frame.byteLength);
    if (a.filled < a.frame.byteLength) return undefined;
    this.assembling = undefined;
    const view = new DataView(a.frame.buffer);
    const stored = view.getBigUint64(CHECKSUM_OFFSET);
    view.setBigUint64(CHECKSUM_OFFSET, 0n);
    const actual = checksum64(a.frame);
    if (actual !== stored) throw linkError('ERR_LINK_CHECKSUM', this.connection, 'checksum', hex(actual, 16), hex(stored, 16));
    return { type: a.frame[5] as LinkFrameType, body: a.frame.subarray(LINK_HEADER_BYTES) };
  }

  protected partialBytes(): number {
    return this.assembling ? this.assembling.filled : this.headerFilled;
  }

  protected truncated(bufferedBytes: number): ProtocolError {
    const need = this.assembling ? this.assembling.frame.byteLength : LINK_HEADER_BYTES;
    return linkError('ERR_LINK_TRUNCATED', this.connection, 'frame', `${need} bytes`, `${bufferedBytes} bytes before the end`);
  }

  private checkHeader(): number {
    const r = new ByteReader(this.header);
    const magic = r.u32('magic');
    if (magic !== LINK_MAGIC) throw linkError('ERR_LINK_MAGIC', this.connection, 'magic', hex(LINK_MAGIC, 8), hex(magic, 8));
    const version = r.u8('version');
    if (version !== LINK_VERSION) throw linkError('ERR_LINK_VERSION', this.connection, 'version', LINK_VERSION, version);
    const type = r.u8('type');
    if (!TYPE_NAMES.has(type)) throw linkError('ERR_LINK_TYPE', this.connection, 'type', `1 to ${TYPE_NAMES.size}`, type);
    const reserved = r.u16('reserved');
    if (reserved !== 0) throw linkError('ERR_LINK_FIELD', this.connection, 'reserved', 0, reserved);
    const length = r.u32('length');
    if (length > MAX_LINK_BODY) throw linkError('ERR_LINK_LENGTH', this.connection, 'length', `<= ${MAX_LINK_BODY}`, length);
    return length;
  }
}

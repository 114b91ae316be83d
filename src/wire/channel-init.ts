// The first 32 bytes of a data connection: which session and which channel it is. QEMU's
// equivalent (MultiFDInit_t) binds channels to a VM uuid that both sides must be given; ours
// binds them to the random session id of the hello, so a stray connection from another
// migration, or a replayed one from an earlier session, is refused before it carries a page.
import { outOfRange, protocolError } from '../errors.js';
import { checksum64 } from '../wasm/kernels.js';
import { ByteReader, ByteWriter } from './byte-cursor.js';
import { CHANNEL_INIT_BYTES, DATA_MAGIC, PROTOCOL_VERSION, SESSION_ID_BYTES, hex } from './constants.js';

const CHECKED_BYTES = CHANNEL_INIT_BYTES - 8;

/** What a data connection says about itself. */
export interface ChannelInit {
  /** The session id of the hello (16 bytes). */
  sessionId: Uint8Array;
  /** This channel's id, 0 to channels - 1. */
  channelId: number;
}

/** What the receiver knows when a data connection arrives. */
export interface ChannelInitExpectation {
  /** The session id this receiver accepted in the hello. */
  sessionId: Uint8Array;
  /** The hello's channel count: ids must be below it. */
  channels: number;
  /** Channel ids already connected. */
  taken: ReadonlySet<number>;
}

/**
 * The 32-byte init a sender writes first on data channel `channelId`.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a session id that is not 16 bytes or an id that is not a u16.
 */
export function encodeChannelInit({ sessionId, channelId }: ChannelInit): Uint8Array {
  checkSessionIdLength(sessionId);
  const w = new ByteWriter(new Uint8Array(CHANNEL_INIT_BYTES));
  w.u32(DATA_MAGIC, 'magic');
  w.u8(PROTOCOL_VERSION, 'version');
  w.u8(0, 'reserved');
  w.u16(channelId, 'channelId');
  w.bytes(sessionId);
  const bytes = w.written();
  w.u64(checksum64(bytes.subarray(0, CHECKED_BYTES)), 'checksum');
  return w.written();
}

/**
 * Reads a data connection's init (its first {@link CHANNEL_INIT_BYTES} bytes; later bytes are
 * ignored) and checks everything that needs no session: length, magic, version, reserved and
 * checksum, in that order. A receiver runs it as soon as the bytes are in, even before the
 * hello, so a malformed init is refused at once; {@link checkChannelInit} does the rest. The
 * `channel` in error details is the id the init claims, not yet trusted, or -1 when too few
 * bytes arrived to hold one.
 * @throws ProtocolError `ERR_INIT_TRUNCATED`, `ERR_INIT_MAGIC`, `ERR_INIT_VERSION`,
 * `ERR_INIT_FIELD` or `ERR_INIT_CHECKSUM`.
 */
export function readChannelInit(bytes: Uint8Array): ChannelInit {
  const claimed = bytes.byteLength >= 8 ? (bytes[6]! << 8) | bytes[7]! : -1;
  const fail = initError(claimed);
  if (bytes.byteLength < CHANNEL_INIT_BYTES) {
    throw fail('ERR_INIT_TRUNCATED', 'init', `${CHANNEL_INIT_BYTES} bytes`, `${bytes.byteLength} bytes`);
  }
  const r = new ByteReader(bytes.subarray(0, CHANNEL_INIT_BYTES));
  const magic = r.u32('magic');
  if (magic !== DATA_MAGIC) throw fail('ERR_INIT_MAGIC', 'magic', hex(DATA_MAGIC, 8), hex(magic, 8));
  const version = r.u8('version');
  if (version !== PROTOCOL_VERSION) throw fail('ERR_INIT_VERSION', 'version', PROTOCOL_VERSION, version);
  const reserved = r.u8('reserved');
  if (reserved !== 0) throw fail('ERR_INIT_FIELD', 'reserved', 0, reserved);
  const channelId = r.u16('channelId');
  const sessionId = r.bytesView('sessionId', SESSION_ID_BYTES);
  const checksum = r.u64('checksum');
  const actual = checksum64(bytes.subarray(0, CHECKED_BYTES));
  if (checksum !== actual) throw fail('ERR_INIT_CHECKSUM', 'checksum', hex(actual, 16), hex(checksum, 16));
  return { sessionId, channelId };
}

/**
 * Checks a well-formed init (from {@link readChannelInit}) against the session: its session
 * id, then its id's range (`id >= channels` is refused: QEMU's own test is `>` and lets one id
 * past its array) and duplicates. Returns the channel id.
 * @throws ProtocolError `ERR_SESSION_MISMATCH`, `ERR_CHANNEL_ID` or `ERR_CHANNEL_DUPLICATE`.
 */
export function checkChannelInit({ sessionId, channelId }: ChannelInit, expected: ChannelInitExpectation): number {
  const fail = initError(channelId);
  if (!sameBytes(sessionId, expected.sessionId)) {
    throw fail('ERR_SESSION_MISMATCH', 'sessionId', toHex(expected.sessionId), toHex(sessionId));
  }
  if (channelId >= expected.channels) throw fail('ERR_CHANNEL_ID', 'channelId', `< ${expected.channels}`, channelId);
  if (expected.taken.has(channelId)) throw fail('ERR_CHANNEL_DUPLICATE', 'channelId', 'an id not yet connected', channelId);
  return channelId;
}

/**
 * Validates a data connection's init and returns its channel id: {@link readChannelInit}, then
 * {@link checkChannelInit}, so the checks run in wire order: magic, version, reserved,
 * checksum, then session, id range and duplicates.
 * @throws ProtocolError `ERR_INIT_TRUNCATED`, `ERR_INIT_MAGIC`, `ERR_INIT_VERSION`,
 * `ERR_INIT_FIELD`, `ERR_INIT_CHECKSUM`, `ERR_SESSION_MISMATCH`, `ERR_CHANNEL_ID` or
 * `ERR_CHANNEL_DUPLICATE`.
 */
export function parseChannelInit(bytes: Uint8Array, expected: ChannelInitExpectation): number {
  return checkChannelInit(readChannelInit(bytes), expected);
}

function initError(claimed: number) {
  return (code: string, field: string, want: string | number, got: string | number) =>
    protocolError(code, { channel: claimed, field, expected: want, got });
}

/** @throws RangeError `ERR_OUT_OF_RANGE` unless `sessionId` is 16 bytes. */
export function checkSessionIdLength(sessionId: Uint8Array, name = 'sessionId'): void {
  if (sessionId.byteLength !== SESSION_ID_BYTES) {
    throw outOfRange(`${name}.byteLength`, `${SESSION_ID_BYTES}`, sessionId.byteLength);
  }
}

/** Byte-wise equality of two session ids. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Lower-case hex of a session id, for error details. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

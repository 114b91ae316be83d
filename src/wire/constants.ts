// The fixed numbers of wire format version 2 (docs/wire-format.md). Every magic spells four
// ASCII letters so a hex dump of a capture names its connection and frames at a glance.
import { MAX_PAGES_PER_PACKET } from '../codecs/common.js';

/** The wire format version written in every frame, init and packet (2: packet checksums over unit hashes; a peer refuses 1). */
export const PROTOCOL_VERSION = 2;

/** First 4 bytes of a control connection and of every control frame: "MFDC". */
export const CONTROL_MAGIC = 0x4d464443;

/** First 4 bytes of a data connection (its channel init): "MFDD". */
export const DATA_MAGIC = 0x4d464444;

/** First 4 bytes of every packet on a data channel: "MFDP". */
export const PACKET_MAGIC = 0x4d464450;

/** First 4 bytes of every ack frame a receiver writes back on a data channel: "MFDA". */
export const ACK_MAGIC = 0x4d464441;

/** Packet flag: the packet ends its round on its channel (QEMU's MULTIFD_FLAG_SYNC). */
export const PACKET_FLAG_SYNC = 0x0001;

/** Every packet flag version 2 knows; any other bit is refused. */
export const KNOWN_PACKET_FLAGS = PACKET_FLAG_SYNC;

/** Bytes a listener peeks to tell a control connection from a data connection. */
export const CONNECTION_MAGIC_BYTES = 4;

/** Largest control frame body in bytes (1 MiB). */
export const MAX_CONTROL_BODY = 1024 * 1024;

/** Control frame head: magic, version, type, reserved, body length. */
export const CONTROL_HEAD_BYTES = 12;

/** Bytes of the XXH64 checksum that ends every control frame, init and packet header. */
export const CHECKSUM_BYTES = 8;

/** Bytes of a session id (a random UUID's 16 bytes). */
export const SESSION_ID_BYTES = 16;

/** Bytes of the data channel init message. */
export const CHANNEL_INIT_BYTES = 32;

/** Bytes of the fixed part of a packet header, before its page runs. */
export const PACKET_FIXED_HEADER_BYTES = 40;

/** Offset of the checksum field in a packet header. */
export const PACKET_CHECKSUM_OFFSET = 32;

/** Bytes of one page run (u32 first, u32 count). */
export const PAGE_RUN_BYTES = 8;

/** Most zero runs one packet may carry. */
export const MAX_ZERO_RUNS = 4096;

/** Most normal pages (and so normal runs) one packet may carry: the hello's pagesPerPacket ceiling. */
export { MAX_PAGES_PER_PACKET };

/** Data channels per session: 1 to 255, as QEMU's multifd-channels. */
export const MAX_CHANNELS = 255;

/** RAM blocks per session. */
export const MAX_BLOCKS = 4096;

/** Longest block name in UTF-8 bytes (QEMU's idstr is 256 bytes with its NUL). */
export const MAX_BLOCK_NAME_BYTES = 255;

/** Page indices are u32, so a block holds at most 2^32 pages. */
export const MAX_BLOCK_PAGES = 2 ** 32;

/** Which kind of connection starts with these bytes (at least {@link CONNECTION_MAGIC_BYTES}), if any. */
export function connectionKind(firstBytes: Uint8Array): 'control' | 'data' | undefined {
  if (firstBytes.byteLength < CONNECTION_MAGIC_BYTES) return undefined;
  const magic = new DataView(firstBytes.buffer, firstBytes.byteOffset, CONNECTION_MAGIC_BYTES).getUint32(0);
  if (magic === CONTROL_MAGIC) return 'control';
  if (magic === DATA_MAGIC) return 'data';
  return undefined;
}

/** `0x`-prefixed upper-case hex, zero-padded to `digits`, for magics and checksums in error details. */
export function hex(value: number | bigint, digits: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(digits, '0')}`;
}

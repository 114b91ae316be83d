// The bodies of control frames: one entry per message type with its encoder, its decoder
// and its field rules. The rules are written once and run on both sides: the sender checks
// before writing (a RangeError names its own bad argument) and the receiver checks after
// parsing (a ProtocolError names the peer's bad field), so nothing this module writes can be
// refused by this module's reader.
import { sessionCodecKnown } from '../codecs/registry.js';
import type { ByteReader, ByteWriter } from './byte-cursor.js';
import { checkSessionIdLength } from './channel-init.js';
import {
  MAX_BLOCK_NAME_BYTES,
  MAX_BLOCK_PAGES,
  MAX_BLOCKS,
  MAX_CHANNELS,
  MAX_PAGES_PER_PACKET,
  SESSION_ID_BYTES,
} from './constants.js';
import { checkRuns, readRuns, writeRuns, type PageRun } from './page-runs.js';

/** Zero-page detection, QEMU's meanings: nowhere, on the main thread, or on the workers (the hello names it). */
export type ZeroPageDetection = 'none' | 'legacy' | 'multifd';

/** One RAM block of the session: its unique name and size. */
export interface BlockDescriptor {
  /** 1 to 255 bytes of UTF-8, unique within the session (like QEMU's RAMBlock idstr). */
  name: string;
  /** Size in bytes: positive, a multiple of the page size, at most 2^32 pages. */
  byteLength: number;
}

/** Sender → receiver, first frame: everything the receiver needs to accept the session. */
export interface HelloMessage {
  type: 'hello';
  /** 16 random bytes naming the session; every data channel's init repeats them. */
  sessionId: Uint8Array;
  /** A power of two from 4096 to 65536. */
  pageSize: number;
  /** Data channels that will connect: 1 to 255. */
  channels: number;
  /** The configured codec's wire number (packets name their own codec; this one is the default). */
  codecWireId: number;
  /** The sender's compression level (informational: decoders do not need it). */
  level: number;
  zeroPageDetection: ZeroPageDetection;
  /** Most normal pages per packet: 1 to 1024. */
  pagesPerPacket: number;
  /** 1 to 4096 blocks; packets name a block by its index here. */
  blocks: BlockDescriptor[];
  /**
   * The sender's X25519 public key (32 bytes) for the session's resume secret; absent: the
   * sender will not resume this session after losing its control connection.
   */
  resumeKey?: Uint8Array;
}

/** Receiver → sender: the hello is accepted; data channels may connect. */
export interface HelloAckMessage {
  type: 'hello-ack';
  sessionId: Uint8Array;
  /** The receiver's X25519 public key, when both ends keep the session through an outage. */
  resumeKey?: Uint8Array;
}

/**
 * Sender → receiver, first frame of a new control connection that takes the session back
 * after the old one was lost. The proof shows the sender knows the session's resume secret.
 */
export interface ResumeMessage {
  type: 'resume';
  sessionId: Uint8Array;
  /** Counts the sender's resume attempts from 1: a receiver accepts only one above the last it accepted. */
  attempt: number;
  /** Control messages the sender has received in this session (after the hello-ack). */
  received: number;
  /** HMAC-SHA256 under the resume secret over the fields above (src/migration/resume-secret.ts). */
  proof: Uint8Array;
}

/** Receiver → sender: the resume is accepted, with the receiver's own proof. */
export interface ResumeAckMessage {
  type: 'resume-ack';
  sessionId: Uint8Array;
  /** The attempt it answers. */
  attempt: number;
  /** Control messages the receiver has received in this session (after the hello). */
  received: number;
  proof: Uint8Array;
}

/** Sender → receiver: zero pages found on the main thread (zero-page-detection=legacy). */
export interface ZeroPagesMessage {
  type: 'zero-pages';
  round: number;
  blockIndex: number;
  /** At least one run; ascending, non-overlapping, inside the block. */
  runs: PageRun[];
}

/** Sender → receiver: every data packet of `round` is written. */
export interface RoundEndMessage {
  type: 'round-end';
  round: number;
  /** Data packets written in this round over all channels, SYNC packets excluded. */
  packets: number;
}

/** Sender → receiver: the migration's last round is done. */
export interface CompleteMessage {
  type: 'complete';
  rounds: number;
  /** The sender's image checksum. */
  checksum: bigint;
}

/** Receiver → sender: what was applied, and the receiver's image checksum. */
export interface ReportMessage {
  type: 'report';
  normalPages: number;
  zeroPages: number;
  /** The receiver's image checksum. */
  checksum: bigint;
  /** Receiver process CPU time during the migration, in microseconds. */
  cpuMicros: number;
}

/** Either direction: the sender of this frame is giving up. */
export interface ErrorMessage {
  type: 'error';
  /** A stable error code, e.g. `ERR_PACKET_CHECKSUM`. */
  code: string;
  message: string;
}

/** Any control message. */
export type ControlMessage =
  | HelloMessage
  | HelloAckMessage
  | ResumeMessage
  | ResumeAckMessage
  | ZeroPagesMessage
  | RoundEndMessage
  | CompleteMessage
  | ReportMessage
  | ErrorMessage;

/** A control message's `type`. */
export type ControlType = ControlMessage['type'];

/** Builds the error for a field outside its rules. */
export type FieldError = (field: string, expected: string | number, got: string | number) => Error;

/** What a reader knows from earlier frames: the page counts of the hello's blocks, once read. */
export interface ControlContext {
  blockPages?: readonly number[];
}

/** How one message type's body is written, read and checked. */
export interface BodyCodec<M extends ControlMessage> {
  readonly wireType: number;
  encode(w: ByteWriter, message: M): void;
  decode(r: ByteReader, fail: FieldError): M;
  /** Field rules beyond what the wire widths already enforce, if the type has any. */
  check?(message: M, fail: FieldError, context: ControlContext): void;
}

const ZERO_PAGE_DETECTION: readonly ZeroPageDetection[] = ['none', 'legacy', 'multifd'];
const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

function writeString(w: ByteWriter, value: string, field: string): void {
  const bytes = utf8.encode(value);
  w.u16(bytes.byteLength, `${field}.byteLength`);
  w.bytes(bytes);
}

function readString(r: ByteReader, field: string, fail: FieldError): string {
  const bytes = r.bytesView(field, r.u16(`${field}.byteLength`));
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw fail(field, 'valid UTF-8', 'malformed UTF-8');
  }
}

/** A u64 count as a number: counts stay below 2^53 in any migration, so a larger one is corrupt. */
function readCount(r: ByteReader, field: string, fail: FieldError): number {
  const value = r.u64(field);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(field, `<= ${Number.MAX_SAFE_INTEGER}`, value.toString());
  return Number(value);
}

function checkRange(value: number, min: number, max: number, field: string, fail: FieldError): void {
  if (!Number.isInteger(value) || value < min || value > max) throw fail(field, `${min} to ${max}`, value);
}

function checkBlocks(blocks: readonly BlockDescriptor[], pageSize: number, fail: FieldError): void {
  checkRange(blocks.length, 1, MAX_BLOCKS, 'blocks.length', fail);
  const names = new Set<string>();
  blocks.forEach(({ name, byteLength }, i) => {
    const nameBytes = utf8.encode(name).byteLength;
    if (nameBytes < 1 || nameBytes > MAX_BLOCK_NAME_BYTES) {
      throw fail(`blocks[${i}].name.byteLength`, `1 to ${MAX_BLOCK_NAME_BYTES}`, nameBytes);
    }
    if (names.has(name)) throw fail(`blocks[${i}].name`, 'a name no earlier block has', name);
    names.add(name);
    if (!Number.isSafeInteger(byteLength) || byteLength <= 0 || byteLength % pageSize !== 0) {
      throw fail(`blocks[${i}].byteLength`, `a positive multiple of ${pageSize}`, byteLength);
    }
    if (byteLength / pageSize > MAX_BLOCK_PAGES) {
      throw fail(`blocks[${i}].byteLength`, `at most ${MAX_BLOCK_PAGES} pages of ${pageSize}`, byteLength);
    }
  });
}

const hello: BodyCodec<HelloMessage> = {
  wireType: 1,
  encode(w, m) {
    w.bytes(m.sessionId);
    w.u32(m.pageSize, 'pageSize');
    w.u16(m.channels, 'channels');
    w.u8(m.codecWireId, 'codecWireId');
    w.i32(m.level, 'level');
    w.u8(ZERO_PAGE_DETECTION.indexOf(m.zeroPageDetection), 'zeroPageDetection');
    w.u16(m.pagesPerPacket, 'pagesPerPacket');
    w.u16(m.blocks.length, 'blocks.length');
    m.blocks.forEach((block, i) => {
      writeString(w, block.name, `blocks[${i}].name`);
      w.u64(block.byteLength, `blocks[${i}].byteLength`);
    });
    writeResumeKey(w, m.resumeKey);
  },
  decode(r, fail) {
    const sessionId = r.bytesView('sessionId', SESSION_ID_BYTES).slice();
    const pageSize = r.u32('pageSize');
    const channels = r.u16('channels');
    const codecWireId = r.u8('codecWireId');
    const level = r.i32('level');
    const detection = r.u8('zeroPageDetection');
    const zeroPageDetection = ZERO_PAGE_DETECTION[detection];
    if (zeroPageDetection === undefined) throw fail('zeroPageDetection', `0 to ${ZERO_PAGE_DETECTION.length - 1}`, detection);
    const pagesPerPacket = r.u16('pagesPerPacket');
    const count = r.u16('blocks.length');
    const blocks: BlockDescriptor[] = [];
    for (let i = 0; i < count; i++) {
      blocks.push({ name: readString(r, `blocks[${i}].name`, fail), byteLength: readCount(r, `blocks[${i}].byteLength`, fail) });
    }
    return { type: 'hello', sessionId, pageSize, channels, codecWireId, level, zeroPageDetection, pagesPerPacket, blocks, ...readResumeKey(r, fail) };
  },
  check(m, fail) {
    checkSessionIdLength(m.sessionId);
    const { pageSize } = m;
    if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
      throw fail('pageSize', 'a power of two from 4096 to 65536', pageSize);
    }
    checkRange(m.channels, 1, MAX_CHANNELS, 'channels', fail);
    if (!sessionCodecKnown(m.codecWireId)) throw fail('codecWireId', 'a registered codec or auto (255)', m.codecWireId);
    if (!ZERO_PAGE_DETECTION.includes(m.zeroPageDetection)) {
      throw fail('zeroPageDetection', ZERO_PAGE_DETECTION.join(' | '), String(m.zeroPageDetection));
    }
    checkRange(m.pagesPerPacket, 1, MAX_PAGES_PER_PACKET, 'pagesPerPacket', fail);
    checkBlocks(m.blocks, pageSize, fail);
    checkResumeKey(m.resumeKey, fail);
  },
};

const helloAck: BodyCodec<HelloAckMessage> = {
  wireType: 2,
  encode(w, m) {
    w.bytes(m.sessionId);
    writeResumeKey(w, m.resumeKey);
  },
  decode: (r, fail) => ({ type: 'hello-ack', sessionId: r.bytesView('sessionId', SESSION_ID_BYTES).slice(), ...readResumeKey(r, fail) }),
  check(m, fail) {
    checkSessionIdLength(m.sessionId);
    checkResumeKey(m.resumeKey, fail);
  },
};

/** resume and resume-ack share one body: session id, attempt, count received, proof. */
function resumeCodec<M extends ResumeMessage | ResumeAckMessage>(type: M['type'], wireType: number): BodyCodec<M> {
  return {
    wireType,
    encode(w, m) {
      w.bytes(m.sessionId);
      w.u32(m.attempt, 'attempt');
      w.u64(m.received, 'received');
      w.bytes(m.proof);
    },
    decode: (r, fail) =>
      ({
        type,
        sessionId: r.bytesView('sessionId', SESSION_ID_BYTES).slice(),
        attempt: r.u32('attempt'),
        received: readCount(r, 'received', fail),
        proof: r.bytesView('proof', RESUME_PROOF_BYTES).slice(),
      }) as M,
    check(m, fail) {
      checkSessionIdLength(m.sessionId);
      if (m.attempt < 1) throw fail('attempt', '>= 1', m.attempt);
      if (m.proof.byteLength !== RESUME_PROOF_BYTES) throw fail('proof.byteLength', RESUME_PROOF_BYTES, m.proof.byteLength);
    },
  };
}

const zeroPages: BodyCodec<ZeroPagesMessage> = {
  wireType: 3,
  encode(w, m) {
    w.u32(m.round, 'round');
    w.u32(m.blockIndex, 'blockIndex');
    w.u32(m.runs.length, 'runs.length');
    writeRuns(w, m.runs, 'runs');
  },
  decode(r) {
    const round = r.u32('round');
    const blockIndex = r.u32('blockIndex');
    // No allocation up front from the declared count: a lying count runs out of body first.
    return { type: 'zero-pages', round, blockIndex, runs: readRuns(r, r.u32('runs.length'), 'runs') };
  },
  check(m, fail, { blockPages }) {
    if (m.runs.length < 1) throw fail('runs.length', '>= 1', m.runs.length);
    let pageCount = MAX_BLOCK_PAGES;
    if (blockPages) {
      const pages = blockPages[m.blockIndex];
      if (pages === undefined) throw fail('blockIndex', `< ${blockPages.length}`, m.blockIndex);
      pageCount = pages;
    }
    checkRuns(m.runs, 'runs', pageCount, (_fault, field, expected, got) => fail(field, expected, got));
  },
};

const roundEnd: BodyCodec<RoundEndMessage> = {
  wireType: 4,
  encode(w, m) {
    w.u32(m.round, 'round');
    w.u64(m.packets, 'packets');
  },
  decode: (r, fail) => ({ type: 'round-end', round: r.u32('round'), packets: readCount(r, 'packets', fail) }),
};

const complete: BodyCodec<CompleteMessage> = {
  wireType: 5,
  encode(w, m) {
    w.u32(m.rounds, 'rounds');
    w.u64(m.checksum, 'checksum');
  },
  decode: (r) => ({ type: 'complete', rounds: r.u32('rounds'), checksum: r.u64('checksum') }),
};

const report: BodyCodec<ReportMessage> = {
  wireType: 6,
  encode(w, m) {
    w.u64(m.normalPages, 'normalPages');
    w.u64(m.zeroPages, 'zeroPages');
    w.u64(m.checksum, 'checksum');
    w.u64(m.cpuMicros, 'cpuMicros');
  },
  decode: (r, fail) => ({
    type: 'report',
    normalPages: readCount(r, 'normalPages', fail),
    zeroPages: readCount(r, 'zeroPages', fail),
    checksum: r.u64('checksum'),
    cpuMicros: readCount(r, 'cpuMicros', fail),
  }),
};

const error: BodyCodec<ErrorMessage> = {
  wireType: 7,
  encode(w, m) {
    writeString(w, m.code, 'code');
    writeString(w, m.message, 'message');
  },
  decode: (r, fail) => ({ type: 'error', code: readString(r, 'code', fail), message: readString(r, 'message', fail) }),
  check(m, fail) {
    if (m.code.length === 0) throw fail('code', 'a non-empty code', '""');
  },
};

/** Bytes of an X25519 public key. */
export const RESUME_KEY_BYTES = 32;
/** Bytes of a resume proof (HMAC-SHA256). */
export const RESUME_PROOF_BYTES = 32;

/** An optional resume key: a length byte (0 or 32), then the key. */
function writeResumeKey(w: ByteWriter, key: Uint8Array | undefined): void {
  w.u8(key?.byteLength ?? 0, 'resumeKey.byteLength');
  if (key) w.bytes(key);
}

/** `{ resumeKey }` when the frame carries one, else nothing (the field stays absent). */
function readResumeKey(r: ByteReader, fail: FieldError): { resumeKey?: Uint8Array } {
  const length = r.u8('resumeKey.byteLength');
  if (length === 0) return {};
  if (length !== RESUME_KEY_BYTES) throw fail('resumeKey.byteLength', `0 or ${RESUME_KEY_BYTES}`, length);
  return { resumeKey: r.bytesView('resumeKey', length).slice() };
}

function checkResumeKey(key: Uint8Array | undefined, fail: FieldError): void {
  if (key && key.byteLength !== RESUME_KEY_BYTES) throw fail('resumeKey.byteLength', `0 or ${RESUME_KEY_BYTES}`, key.byteLength);
}

type BodyCodecs = { [T in ControlType]: BodyCodec<Extract<ControlMessage, { type: T }>> };

/** Each message type's body codec, by `type`. */
export const BODY_CODECS: BodyCodecs = {
  hello,
  'hello-ack': helloAck,
  resume: resumeCodec<ResumeMessage>('resume', 8),
  'resume-ack': resumeCodec<ResumeAckMessage>('resume-ack', 9),
  'zero-pages': zeroPages,
  'round-end': roundEnd,
  complete,
  report,
  error,
};

const byWireType = new Map<number, BodyCodec<ControlMessage>>(
  Object.values(BODY_CODECS).map((codec) => [codec.wireType, codec as BodyCodec<ControlMessage>]),
);

/** The body codec for a wire type number, or undefined for an unknown type. */
export function bodyCodecByWireType(wireType: number): BodyCodec<ControlMessage> | undefined {
  return byWireType.get(wireType);
}

/** The body codec for a message (typed loosely: the union's members share one shape). */
export function bodyCodecOf(message: ControlMessage): BodyCodec<ControlMessage> | undefined {
  return (BODY_CODECS as Record<string, BodyCodec<ControlMessage> | undefined>)[message.type];
}

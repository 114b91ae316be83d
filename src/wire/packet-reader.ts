// The receiving side of one data channel, on the main thread. It validates each packet's
// header against the session before it allocates the packet's buffer, so a hostile length or
// count is refused while it is still 40 bytes of header, and every later byte of the packet
// goes straight into that buffer: copied from pushed chunks, or read there by the kernel
// (landing/landed, for a socket that reads into buffers of its choice). What leaves is a whole
// packet in the buffer its `allocate` gave (a receiver's staging memory), ready for the worker
// that decodes it, verifies the checksum and applies it: the main thread, which moves every
// channel's bytes, copies each at most once and hashes none.
import { codecByWireId } from '../codecs/registry.js';
import { outOfRange, protocolError, type ProtocolError } from '../errors.js';
import { ByteReader } from './byte-cursor.js';
import {
  KNOWN_PACKET_FLAGS,
  MAX_PAGES_PER_PACKET,
  MAX_ZERO_RUNS,
  PACKET_FIXED_HEADER_BYTES,
  PACKET_FLAG_SYNC,
  PACKET_MAGIC,
  PAGE_RUN_BYTES,
  PROTOCOL_VERSION,
  hex,
} from './constants.js';
import { packetHeaderOf, readRawPacketHeader, type PacketHeader, type ParsedPacket, type RawPacketHeader } from './packet.js';
import { checkDisjoint, checkRuns, readRuns, runsPageCount, type RunError } from './page-runs.js';
import { StreamReader } from './stream-reader.js';

/** What a data channel's reader must know about the session (from the hello). */
export interface PacketReaderOptions {
  /** This channel's id, for error details. */
  channel: number;
  pageSize: number;
  /** The hello's pagesPerPacket: the most normal pages (and normal runs) per packet. */
  pagesPerPacket: number;
  /** The hello's blocks, in order, with their sizes in pages. */
  blocks: readonly { pageCount: number }[];
  /**
   * The hello's codec: every data packet must name it (a SYNC packet names 0), so a peer that
   * agreed on one codec cannot make the workers load another's decoder (a vendor library).
   * A receiver always sets it; absent, any registered codec is read (tools that read streams
   * of several codecs with one reader).
   */
  codecWireId?: number;
  /**
   * Supplies the buffer a packet is assembled in: exactly `byteLength` bytes. A receiver hands
   * out slots of a shared staging memory its workers read in place and give back, so packets
   * do not cost fresh memory (and its page faults) each; default: a new Uint8Array.
   */
  allocate?: (byteLength: number) => Uint8Array;
}

/**
 * Parses one data channel's byte stream (after its init) into packets. Checks, in order:
 * magic, version, codec (registered, and the session's when `codecWireId` is given), flag
 * bits, SYNC form, sequence range, block index, run counts, runs (non-empty, inside the
 * block, ascending, disjoint across both lists), normal page total and payload length bound. The checksum is left to {@link verifyPacketChecksum}, and
 * round order to the receiver, which knows the round every channel must be in. Once it has
 * thrown, it throws the same error again.
 *
 * Errors are ProtocolErrors naming the channel, the packet's ordinal on it, the field,
 * expected and got: `ERR_PACKET_MAGIC`, `ERR_PACKET_VERSION`, `ERR_PACKET_CODEC`,
 * `ERR_PACKET_FLAGS`, `ERR_PACKET_SYNC`, `ERR_PACKET_SEQUENCE`, `ERR_PACKET_BLOCK`,
 * `ERR_PACKET_COUNT`, `ERR_PACKET_PAGE_INDEX`, `ERR_PACKET_OVERLAP`,
 * `ERR_PACKET_PAYLOAD_LENGTH` from `next()`, and `ERR_PACKET_TRUNCATED` from `end()` when
 * the channel closes mid-packet.
 *
 * Memory: the chunks pushed since the last `next()`, a header scratch of at most 41 000
 * bytes, and the packet being assembled.
 */
export class PacketReader extends StreamReader<ParsedPacket> {
  private readonly options: PacketReaderOptions;
  private readonly scratch: Uint8Array;
  private scratchFilled = 0;
  /** The fixed header once validated, while its runs are still arriving. */
  private fixed: RawPacketHeader | undefined;
  /** The packet being filled once its whole header is validated. */
  private assembling: { header: PacketHeader; bytes: Uint8Array; filled: number } | undefined;
  private ordinal = 0;
  /** payloadBound by (codec, normal pages): a WASM call per packet is avoidable. */
  private readonly bounds = new Map<number, number>();
  /** Whether the last landing() was in place (slot or scratch) rather than the spare buffer. */
  private landingInPlace = false;
  /** Where bytes land that cannot go into place yet (see landing()). */
  private readonly spare = new Uint8Array(64 * 1024);

  constructor(options: PacketReaderOptions) {
    super();
    const { pagesPerPacket } = options;
    if (!Number.isInteger(pagesPerPacket) || pagesPerPacket < 1 || pagesPerPacket > MAX_PAGES_PER_PACKET) {
      throw outOfRange('options.pagesPerPacket', `an integer from 1 to ${MAX_PAGES_PER_PACKET}`, pagesPerPacket);
    }
    this.options = options;
    this.scratch = new Uint8Array(PACKET_FIXED_HEADER_BYTES + PAGE_RUN_BYTES * (pagesPerPacket + MAX_ZERO_RUNS));
  }

  protected partialBytes(): number {
    return this.assembling ? this.assembling.filled : this.scratchFilled;
  }

  /**
   * Where the connection's next bytes should land, for a socket that reads straight into a
   * buffer of the caller's choice (see transport/direct-read): the rest of the packet being
   * assembled (its staging slot) or of the header scratch, so the kernel copies the bytes into
   * place and nothing else does. When bytes are still queued, or a whole header waits for
   * `next()` to take it, they land in a spare buffer and queue like a pushed chunk. Report
   * how many landed with {@link landed} before calling `next()`.
   */
  landing(): Uint8Array {
    this.landingInPlace = false;
    if (this.queue.length === 0 && !this.broken) {
      if (this.assembling && this.assembling.filled < this.assembling.bytes.byteLength) {
        this.landingInPlace = true;
        return this.assembling.bytes.subarray(this.assembling.filled);
      }
      const want = this.assembling ? 0 : this.fixed ? this.headerBytes(this.fixed) : PACKET_FIXED_HEADER_BYTES;
      if (this.scratchFilled < want) {
        this.landingInPlace = true;
        return this.scratch.subarray(this.scratchFilled, want);
      }
    }
    return this.spare;
  }

  /** Takes `n` bytes that landed in the buffer the last {@link landing} returned. */
  landed(n: number): void {
    if (!this.landingInPlace) return this.push(this.spare.slice(0, n));
    if (this.assembling) this.assembling.filled += n;
    else this.scratchFilled += n;
  }

  protected truncated(bufferedBytes: number): ProtocolError {
    const needed = this.assembling?.bytes.byteLength ?? (this.fixed ? this.headerBytes(this.fixed) : PACKET_FIXED_HEADER_BYTES);
    return this.error('ERR_PACKET_TRUNCATED', 'packet', `${needed} bytes`, `${bufferedBytes} bytes before the end`);
  }

  protected step(): ParsedPacket | undefined {
    if (!this.assembling) {
      if (!this.fixed) {
        this.scratchFilled = this.queue.fill(this.scratch, this.scratchFilled, PACKET_FIXED_HEADER_BYTES);
        if (this.scratchFilled < PACKET_FIXED_HEADER_BYTES) return undefined;
        this.fixed = this.checkFixed(readRawPacketHeader(this.scratch));
      }
      const headerBytes = this.headerBytes(this.fixed);
      this.scratchFilled = this.queue.fill(this.scratch, this.scratchFilled, headerBytes);
      if (this.scratchFilled < headerBytes) return undefined;
      const header = this.checkRuns(this.fixed);
      const byteLength = headerBytes + header.payloadLength;
      const bytes = this.options.allocate?.(byteLength) ?? new Uint8Array(byteLength);
      bytes.set(this.scratch.subarray(0, headerBytes));
      this.assembling = { header, bytes, filled: headerBytes };
      this.fixed = undefined;
      this.scratchFilled = 0;
    }
    const packet = this.assembling;
    packet.filled = this.queue.fill(packet.bytes, packet.filled, packet.bytes.byteLength);
    if (packet.filled < packet.bytes.byteLength) return undefined;
    this.assembling = undefined;
    this.ordinal++;
    const { header, bytes } = packet;
    return { header, bytes, payloadOffset: bytes.byteLength - header.payloadLength };
  }

  private headerBytes(raw: RawPacketHeader): number {
    return PACKET_FIXED_HEADER_BYTES + PAGE_RUN_BYTES * (raw.normalRunCount + raw.zeroRunCount);
  }

  /** Everything the fixed 40 bytes can tell; returns them for the runs stage. */
  private checkFixed(raw: RawPacketHeader): RawPacketHeader {
    const { pagesPerPacket, blocks } = this.options;
    if (raw.magic !== PACKET_MAGIC) throw this.error('ERR_PACKET_MAGIC', 'magic', hex(PACKET_MAGIC, 8), hex(raw.magic, 8));
    if (raw.version !== PROTOCOL_VERSION) throw this.error('ERR_PACKET_VERSION', 'version', PROTOCOL_VERSION, raw.version);
    if (!codecByWireId(raw.codecWireId)) throw this.error('ERR_PACKET_CODEC', 'codecWireId', 'a registered codec', raw.codecWireId);
    const sessionCodec = this.options.codecWireId;
    if (sessionCodec !== undefined && raw.codecWireId !== sessionCodec && !(raw.flags & PACKET_FLAG_SYNC)) {
      throw this.error('ERR_PACKET_CODEC', 'codecWireId', `${sessionCodec} (${codecByWireId(sessionCodec)?.info.id ?? 'unknown'}, the hello's codec)`, raw.codecWireId);
    }
    const unknownFlags = raw.flags & ~KNOWN_PACKET_FLAGS;
    if (unknownFlags) throw this.error('ERR_PACKET_FLAGS', 'flags', `no bits outside ${hex(KNOWN_PACKET_FLAGS, 4)}`, hex(raw.flags, 4));
    if (raw.flags & PACKET_FLAG_SYNC) {
      for (const field of ['codecWireId', 'blockIndex', 'normalRunCount', 'zeroRunCount', 'payloadLength'] as const) {
        if (raw[field] !== 0) throw this.error('ERR_PACKET_SYNC', field, '0 in a SYNC packet', raw[field]);
      }
    }
    if (raw.sequence > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw this.error('ERR_PACKET_SEQUENCE', 'sequence', `<= ${Number.MAX_SAFE_INTEGER}`, raw.sequence.toString());
    }
    if (raw.blockIndex >= blocks.length) throw this.error('ERR_PACKET_BLOCK', 'blockIndex', `< ${blocks.length}`, raw.blockIndex);
    if (raw.normalRunCount > pagesPerPacket) {
      throw this.error('ERR_PACKET_COUNT', 'normalRunCount', `<= ${pagesPerPacket}`, raw.normalRunCount);
    }
    if (raw.zeroRunCount > MAX_ZERO_RUNS) throw this.error('ERR_PACKET_COUNT', 'zeroRunCount', `<= ${MAX_ZERO_RUNS}`, raw.zeroRunCount);
    if (!(raw.flags & PACKET_FLAG_SYNC) && raw.normalRunCount + raw.zeroRunCount === 0) {
      throw this.error('ERR_PACKET_COUNT', 'normalRunCount + zeroRunCount', '>= 1 outside a SYNC packet', 0);
    }
    if (raw.normalRunCount === 0 && raw.payloadLength !== 0) {
      throw this.error('ERR_PACKET_PAYLOAD_LENGTH', 'payloadLength', '0 without normal pages', raw.payloadLength);
    }
    return raw;
  }

  /** Reads and checks the runs behind a valid fixed header; returns the full header. */
  private checkRuns(raw: RawPacketHeader): PacketHeader {
    const { pageSize, pagesPerPacket, blocks } = this.options;
    const r = new ByteReader(this.scratch.subarray(PACKET_FIXED_HEADER_BYTES, this.headerBytes(raw)));
    const normalRuns = readRuns(r, raw.normalRunCount, 'normalRuns');
    const zeroRuns = readRuns(r, raw.zeroRunCount, 'zeroRuns');
    const pageCount = blocks[raw.blockIndex]?.pageCount ?? 0;
    const fail: RunError = (fault, field, expected, got) =>
      this.error(fault === 'overlap' ? 'ERR_PACKET_OVERLAP' : 'ERR_PACKET_PAGE_INDEX', field, expected, got);
    checkRuns(normalRuns, 'normalRuns', pageCount, fail);
    checkRuns(zeroRuns, 'zeroRuns', pageCount, fail);
    checkDisjoint(normalRuns, 'normalRuns', zeroRuns, 'zeroRuns', fail);
    const normalPages = runsPageCount(normalRuns);
    if (normalPages > pagesPerPacket) throw this.error('ERR_PACKET_COUNT', 'normal pages', `<= ${pagesPerPacket}`, normalPages);
    if (normalPages > 0) {
      const bound = this.payloadBound(raw.codecWireId, normalPages, pageSize);
      if (raw.payloadLength > bound) {
        throw this.error('ERR_PACKET_PAYLOAD_LENGTH', 'payloadLength', `<= ${bound} for ${normalPages} pages`, raw.payloadLength);
      }
    }
    return packetHeaderOf(raw, normalRuns, zeroRuns);
  }

  private payloadBound(codecWireId: number, pages: number, pageSize: number): number {
    const key = codecWireId * (MAX_PAGES_PER_PACKET + 1) + pages;
    let bound = this.bounds.get(key);
    if (bound === undefined) {
      bound = codecByWireId(codecWireId)!.payloadBound(pages, pageSize);
      this.bounds.set(key, bound);
    }
    return bound;
  }

  private error(code: string, field: string, expected: string | number, got: string | number): ProtocolError {
    return protocolError(code, { channel: this.options.channel, packet: this.ordinal, field, expected, got });
  }
}

// One QEMU multifd channel's byte stream as a proxy's source side receives it: the 64-byte
// init, then packets, each a header and `normal_pages × pageSize` bytes of pages (method
// none). A header is validated as soon as its bytes are in, before one byte of its pages is
// taken, and its first 12 bytes (magic, version, flags) before the rest, as QEMU 10.0 reads
// them: a device-state packet has a shorter header, and waiting for a RAM header's 1344
// bytes would take its payload for header bytes, or wait for bytes that never come.
import type { ProtocolError } from '../errors.js';
import { StreamReader } from '../wire/stream-reader.js';
import {
  QEMU_INIT_BYTES,
  QEMU_PACKET_PREFIX_BYTES,
  checkQemuPacketPrefix,
  parseQemuInit,
  parseQemuPacketHeader,
  qemuPacketHeaderBytes,
  qemuProtocolError,
  type QemuInit,
  type QemuLocation,
  type QemuPacketHeader,
} from './multifd-format.js';

/** What a QEMU channel reader must be told: nothing on the wire says it. */
export interface QemuChannelReaderOptions {
  /** The QEMUs' target page size (4096 on x86-64). */
  pageSize: number;
  /** multifd-channels: the init's id must be below it. Unchecked when absent. */
  channels?: number;
  /**
   * Where a packet's pages go, asked once its header is validated with their byte count (0
   * for a packet without pages): the source proxy reads them straight into a page slot.
   * Default: a new buffer per packet.
   */
  pagesInto?: (byteLength: number) => Uint8Array;
}

/** What a QEMU channel reader hands over: the init first, then packets. */
export type QemuChannelItem =
  | { kind: 'init'; init: QemuInit }
  | {
      kind: 'packet';
      header: QemuPacketHeader;
      /** The normal pages' bytes in offset order, `normalPages × pageSize`, where `pagesInto` put them. */
      pages: Uint8Array;
    };

/**
 * Parses one QEMU multifd channel fed in chunks split at any byte. `next()` returns the init,
 * then each packet once its pages are in. Errors are ProtocolErrors naming the channel (from
 * its init) and the packet's ordinal on it: those of {@link parseQemuInit} and
 * {@link parseQemuPacketHeader} from `next()`, and `ERR_QEMU_TRUNCATED` from `end()` when the
 * stream stops inside the init (or before it), a header or the pages. An end between packets
 * is clean. Once it has thrown, it throws the same error again.
 *
 * Memory: once `next()` has returned undefined, the reader holds less than one item: the
 * init, or a header and its pages (at most {@link qemuPacketHeaderBytes} + 512 KiB). Chunks
 * pushed since then add to that until `next()` runs, so a caller that drains `next()` after
 * every push, and stops reading its socket while it cannot take items, never holds more.
 */
export class QemuChannelReader extends StreamReader<QemuChannelItem> {
  private readonly pageSize: number;
  private readonly channels: number | undefined;
  private readonly pagesInto: (byteLength: number) => Uint8Array;
  private readonly headerBytes: number;
  /** The init, then each header in turn, while its bytes arrive. */
  private readonly scratch: Uint8Array;
  private scratchFilled = 0;
  private init: QemuInit | undefined;
  /** Packets handed over so far: the ordinal of the one being read. */
  private packets = 0;
  /** The packet whose pages are arriving, its header validated. */
  private assembling: { header: QemuPacketHeader; pages: Uint8Array; filled: number } | undefined;

  /** @throws RangeError `ERR_OUT_OF_RANGE` for a page size QEMU cannot have (see qemuPageCount). */
  constructor(options: QemuChannelReaderOptions) {
    super();
    this.pageSize = options.pageSize;
    this.channels = options.channels;
    this.pagesInto = options.pagesInto ?? ((byteLength) => new Uint8Array(byteLength));
    this.headerBytes = qemuPacketHeaderBytes(options.pageSize);
    this.scratch = new Uint8Array(this.headerBytes);
  }

  /** The channel id of the init, once read. */
  get channelId(): number | undefined {
    return this.init?.channelId;
  }

  /** Declares the stream over: see the class. A channel that closes before its init is truncated too. */
  override end(): void {
    if (!this.broken && !this.init && this.bufferedBytes === 0) throw this.truncated();
    super.end();
  }

  protected step(): QemuChannelItem | undefined {
    if (!this.init) return this.readInit();
    if (!this.assembling) {
      const header = this.readHeader();
      if (!header) return undefined;
      this.assembling = { header, pages: this.pagesInto(header.normalPages * this.pageSize), filled: 0 };
    }
    const packet = this.assembling;
    packet.filled = this.queue.fill(packet.pages, packet.filled, packet.pages.byteLength);
    if (packet.filled < packet.pages.byteLength) return undefined;
    this.assembling = undefined;
    this.packets++;
    return { kind: 'packet', header: packet.header, pages: packet.pages };
  }

  protected partialBytes(): number {
    return this.assembling ? this.headerBytes + this.assembling.filled : this.scratchFilled;
  }

  protected truncated(): ProtocolError {
    const [part, needed, got] = !this.init
      ? ['init', QEMU_INIT_BYTES, this.scratchFilled]
      : this.assembling
        ? ['pages', this.assembling.pages.byteLength, this.assembling.filled]
        : ['packet header', this.headerBytes, this.scratchFilled];
    return qemuProtocolError('ERR_QEMU_TRUNCATED', this.location(), part, `${needed} bytes`, `${got} bytes before the end`);
  }

  private readInit(): QemuChannelItem | undefined {
    this.scratchFilled = this.queue.fill(this.scratch, this.scratchFilled, QEMU_INIT_BYTES);
    if (this.scratchFilled < QEMU_INIT_BYTES) return undefined;
    this.init = parseQemuInit(this.scratch, this.channels);
    this.scratchFilled = 0;
    return { kind: 'init', init: this.init };
  }

  private readHeader(): QemuPacketHeader | undefined {
    const prefixWasIn = this.scratchFilled >= QEMU_PACKET_PREFIX_BYTES;
    this.scratchFilled = this.queue.fill(this.scratch, this.scratchFilled, QEMU_PACKET_PREFIX_BYTES);
    if (this.scratchFilled < QEMU_PACKET_PREFIX_BYTES) return undefined;
    if (!prefixWasIn) checkQemuPacketPrefix(this.scratch, this.location());
    this.scratchFilled = this.queue.fill(this.scratch, this.scratchFilled, this.headerBytes);
    if (this.scratchFilled < this.headerBytes) return undefined;
    this.scratchFilled = 0;
    return parseQemuPacketHeader(this.scratch, this.pageSize, this.location());
  }

  private location(): QemuLocation {
    if (!this.init) return { channel: this.scratchFilled > 24 ? this.scratch[24] : undefined };
    return { channel: this.init.channelId, packet: this.packets };
  }
}

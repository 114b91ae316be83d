// Acknowledgements: what the receiver writes back on a data channel once packets are applied
// to destination memory, so the sender can free them and, when a channel breaks, resend only
// the packets nobody applied (docs/wire-format.md §4.5). A frame names packets by their
// sequence numbers, which are unique within a session.
import { protocolError, type ProtocolError } from '../errors.js';
import { ByteReader, ByteWriter } from './byte-cursor.js';
import { ACK_MAGIC, hex } from './constants.js';
import { StreamReader } from './stream-reader.js';

/** Bytes of an ack frame's head: magic and count. */
export const ACK_HEAD_BYTES = 8;

/** Most sequence numbers one ack frame carries. */
export const MAX_ACKS_PER_FRAME = 4096;

/**
 * Encodes the acks for `sequences` as frames of at most {@link MAX_ACKS_PER_FRAME} each.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a sequence outside 0 .. 2^53 − 1.
 */
export function encodeAcks(sequences: readonly number[]): Uint8Array {
  const frames = Math.ceil(sequences.length / MAX_ACKS_PER_FRAME);
  const w = new ByteWriter(new Uint8Array(frames * ACK_HEAD_BYTES + 8 * sequences.length));
  for (let start = 0; start < sequences.length; start += MAX_ACKS_PER_FRAME) {
    const count = Math.min(MAX_ACKS_PER_FRAME, sequences.length - start);
    w.u32(ACK_MAGIC, 'magic');
    w.u32(count, 'count');
    for (let i = start; i < start + count; i++) w.u64(sequences[i]!, `sequences[${i}]`);
  }
  return w.written();
}

/**
 * Parses the receiver's ack stream on one data channel into batches of sequence numbers.
 * Errors (`ERR_ACK_MAGIC`, `ERR_ACK_COUNT`, `ERR_ACK_SEQUENCE`, `ERR_ACK_TRUNCATED`) are
 * ProtocolErrors naming the channel.
 */
export class AckReader extends StreamReader<number[]> {
  private readonly head = new Uint8Array(ACK_HEAD_BYTES);
  private headFilled = 0;
  private body: { bytes: Uint8Array; filled: number } | undefined;

  constructor(private readonly channel: number) {
    super();
  }

  protected step(): number[] | undefined {
    if (!this.body) {
      this.headFilled = this.queue.fill(this.head, this.headFilled, ACK_HEAD_BYTES);
      if (this.headFilled < ACK_HEAD_BYTES) return undefined;
      const r = new ByteReader(this.head);
      const magic = r.u32('magic');
      if (magic !== ACK_MAGIC) throw this.error('ERR_ACK_MAGIC', 'magic', hex(ACK_MAGIC, 8), hex(magic, 8));
      const count = r.u32('count');
      if (count < 1 || count > MAX_ACKS_PER_FRAME) throw this.error('ERR_ACK_COUNT', 'count', `1 to ${MAX_ACKS_PER_FRAME}`, count);
      this.body = { bytes: new Uint8Array(8 * count), filled: 0 };
      this.headFilled = 0;
    }
    const body = this.body;
    body.filled = this.queue.fill(body.bytes, body.filled, body.bytes.byteLength);
    if (body.filled < body.bytes.byteLength) return undefined;
    this.body = undefined;
    const r = new ByteReader(body.bytes);
    const sequences: number[] = [];
    for (let i = 0; i < body.bytes.byteLength / 8; i++) {
      const sequence = r.u64('sequence');
      if (sequence > BigInt(Number.MAX_SAFE_INTEGER)) throw this.error('ERR_ACK_SEQUENCE', `sequences[${i}]`, `<= ${Number.MAX_SAFE_INTEGER}`, sequence.toString());
      sequences.push(Number(sequence));
    }
    return sequences;
  }

  protected partialBytes(): number {
    return this.body ? this.body.filled : this.headFilled;
  }

  protected truncated(bufferedBytes: number): ProtocolError {
    return this.error('ERR_ACK_TRUNCATED', 'ack', 'a whole frame', `${bufferedBytes} bytes before the end`);
  }

  private error(code: string, field: string, expected: string | number, got: string | number): ProtocolError {
    return protocolError(code, { channel: this.channel, field, expected, got });
  }
}

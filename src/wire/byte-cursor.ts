// Big-endian, bounds-checked cursors shared by every encoder and parser of the wire format.
// The reader never throws on its own terms: running out of bytes is a protocol error whose
// code depends on what is being parsed, so the parser passes in how to report it. The writer
// refuses values that do not fit their field, because a silently truncated field would put a
// frame on the wire that the peer rejects with a much less helpful message.
import { outOfRange } from '../errors.js';

/** Builds the error for a read past the end: the field, the bytes it needs and the bytes left. */
export type OverrunError = (field: string, needed: number, remaining: number) => Error;

/** Reads big-endian fields from a byte range, failing through `overrun` when bytes run out. */
export class ByteReader {
  private readonly view: DataView;
  private at = 0;

  /** Without `overrun`, running out is a plain Error: for callers that sized `bytes` first. */
  constructor(
    private readonly bytes: Uint8Array,
    private readonly overrun: OverrunError = (field) => new Error(`wire parser bug: ${field} read past its checked length`),
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Bytes read so far. */
  get offset(): number {
    return this.at;
  }

  /** Bytes not read yet. */
  get remaining(): number {
    return this.bytes.byteLength - this.at;
  }

  private take(field: string, size: number): number {
    if (size > this.remaining) throw this.overrun(field, size, this.remaining);
    const at = this.at;
    this.at += size;
    return at;
  }

  u8(field: string): number {
    return this.view.getUint8(this.take(field, 1));
  }

  u16(field: string): number {
    return this.view.getUint16(this.take(field, 2));
  }

  u32(field: string): number {
    return this.view.getUint32(this.take(field, 4));
  }

  i32(field: string): number {
    return this.view.getInt32(this.take(field, 4));
  }

  u64(field: string): bigint {
    return this.view.getBigUint64(this.take(field, 8));
  }

  /** A view (not a copy) of the next `length` bytes. */
  bytesView(field: string, length: number): Uint8Array {
    const at = this.take(field, length);
    return this.bytes.subarray(at, at + length);
  }
}

/**
 * Writes big-endian fields. Over a caller's buffer it is fixed-size (running out is a
 * RangeError naming `out.byteLength`); without one it grows, for small control frames whose
 * size is only known once their strings are encoded.
 */
export class ByteWriter {
  private buffer: Uint8Array;
  private view: DataView;
  private at: number;
  private readonly growable: boolean;

  constructor(out?: Uint8Array, offset = 0) {
    this.growable = out === undefined;
    this.buffer = out ?? new Uint8Array(256);
    this.view = new DataView(this.buffer.buffer, this.buffer.byteOffset, this.buffer.byteLength);
    this.at = offset;
  }

  /** Bytes written so far (including the starting offset). */
  get offset(): number {
    return this.at;
  }

  /** The bytes written, as a view of the underlying buffer. */
  written(): Uint8Array {
    return this.buffer.subarray(0, this.at);
  }

  /** Claims `size` bytes and returns their offset. Call it before reading `this.view`: growing replaces the view. */
  private reserve(size: number): number {
    const end = this.at + size;
    if (end > this.buffer.byteLength) {
      if (!this.growable) throw outOfRange('out.byteLength', `at least ${end}`, this.buffer.byteLength);
      const grown = new Uint8Array(Math.max(end, 2 * this.buffer.byteLength));
      grown.set(this.buffer.subarray(0, this.at));
      this.buffer = grown;
      this.view = new DataView(grown.buffer);
    }
    const at = this.at;
    this.at = end;
    return at;
  }

  u8(value: number, field: string): void {
    checkInteger(value, 0, 0xff, field);
    const at = this.reserve(1);
    this.view.setUint8(at, value);
  }

  u16(value: number, field: string): void {
    checkInteger(value, 0, 0xffff, field);
    const at = this.reserve(2);
    this.view.setUint16(at, value);
  }

  u32(value: number, field: string): void {
    checkInteger(value, 0, 0xffffffff, field);
    const at = this.reserve(4);
    this.view.setUint32(at, value);
  }

  i32(value: number, field: string): void {
    checkInteger(value, -0x80000000, 0x7fffffff, field);
    const at = this.reserve(4);
    this.view.setInt32(at, value);
  }

  /** A u64 from a bigint (checksums) or a safe integer (counts). */
  u64(value: bigint | number, field: string): void {
    if (typeof value === 'number') checkInteger(value, 0, Number.MAX_SAFE_INTEGER, field);
    else if (value < 0n || value > 0xffffffffffffffffn) throw outOfRange(field, 'a u64', value);
    const at = this.reserve(8);
    this.view.setBigUint64(at, BigInt(value));
  }

  bytes(value: Uint8Array): void {
    const at = this.reserve(value.byteLength);
    this.buffer.set(value, at);
  }
}

function checkInteger(value: number, min: number, max: number, field: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw outOfRange(field, `an integer from ${min} to ${max}`, value);
  }
}

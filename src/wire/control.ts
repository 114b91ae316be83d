// Control frames: `u32 magic | u8 version | u8 type | u16 reserved | u32 bodyLength | body |
// u64 checksum`. The reader checks the 12-byte head before it allocates room for the body,
// so a corrupt or hostile length costs nothing, and it checks the checksum before it parses
// the body, so a parser never sees bytes the sender did not write.
import { outOfRange, protocolError, type ProtocolError } from '../errors.js';
import { checksum64 } from '../wasm/kernels.js';
import { ByteReader, ByteWriter } from './byte-cursor.js';
import {
  CHECKSUM_BYTES,
  CONTROL_HEAD_BYTES,
  CONTROL_MAGIC,
  MAX_CONTROL_BODY,
  PROTOCOL_VERSION,
  hex,
} from './constants.js';
import {
  bodyCodecByWireType,
  bodyCodecOf,
  type ControlContext,
  type ControlMessage,
  type FieldError,
} from './control-messages.js';
import { FrameReader } from './stream-reader.js';

/**
 * One control frame for `message`, checksum included.
 * @throws RangeError `ERR_OUT_OF_RANGE` naming the field (`message.pageSize`, ...) when the
 * message breaks a rule its reader would enforce, or its body exceeds {@link MAX_CONTROL_BODY}.
 */
export function encodeControl(message: ControlMessage): Uint8Array {
  const codec = bodyCodecOf(message);
  if (!codec) throw outOfRange('message.type', 'a control message type', message.type);
  const fail: FieldError = (field, expected, got) => outOfRange(`message.${field}`, String(expected), got);
  codec.check?.(message, fail, {});
  const bodyWriter = new ByteWriter();
  codec.encode(bodyWriter, message);
  const body = bodyWriter.written();
  if (body.byteLength > MAX_CONTROL_BODY) {
    throw outOfRange('message', `a body of at most ${MAX_CONTROL_BODY} bytes`, `${body.byteLength} bytes`);
  }
  const frame = new Uint8Array(CONTROL_HEAD_BYTES + body.byteLength + CHECKSUM_BYTES);
  const w = new ByteWriter(frame);
  w.u32(CONTROL_MAGIC, 'magic');
  w.u8(PROTOCOL_VERSION, 'version');
  w.u8(codec.wireType, 'type');
  w.u16(0, 'reserved');
  w.u32(body.byteLength, 'bodyLength');
  w.bytes(body);
  w.u64(checksum64(w.written()), 'checksum');
  return frame;
}

/**
 * Parses the control connection's byte stream into messages, validating every frame: magic,
 * version, known type, reserved bits, body length, checksum, exact body consumption and each
 * field's range. After a hello it also checks zero-page frames against the hello's blocks.
 * Once it has thrown, it throws the same error again: the stream has lost its framing.
 *
 * Errors are ProtocolErrors naming channel `'control'`, the frame's ordinal as `packet`, the
 * field, expected and got: `ERR_CONTROL_MAGIC`, `ERR_CONTROL_VERSION`, `ERR_CONTROL_TYPE`,
 * `ERR_CONTROL_LENGTH`, `ERR_CONTROL_CHECKSUM`, `ERR_CONTROL_FIELD` from `next()`, and
 * `ERR_CONTROL_TRUNCATED` from `end()` when the stream stops inside a frame.
 *
 * Memory: the chunks pushed since the last `next()` plus the frame being assembled (at most
 * {@link MAX_CONTROL_BODY} + 20 bytes).
 */
export class ControlReader extends FrameReader<ControlMessage> {
  private ordinal = 0;
  private readonly context: ControlContext = {};

  constructor() {
    super(CONTROL_HEAD_BYTES);
  }

  protected truncated(bufferedBytes: number): ProtocolError {
    return this.error('ERR_CONTROL_TRUNCATED', 'frame', `${this.neededBytes} bytes`, `${bufferedBytes} bytes before the end`);
  }

  protected finish(frame: Uint8Array): ControlMessage {
    const message = this.parseFrame(frame);
    this.ordinal++;
    return message;
  }

  /** Validates the head; returns the frame's length. */
  protected checkHead(head: Uint8Array): number {
    const r = new ByteReader(head);
    const magic = r.u32('magic');
    if (magic !== CONTROL_MAGIC) throw this.error('ERR_CONTROL_MAGIC', 'magic', hex(CONTROL_MAGIC, 8), hex(magic, 8));
    const version = r.u8('version');
    if (version !== PROTOCOL_VERSION) throw this.error('ERR_CONTROL_VERSION', 'version', PROTOCOL_VERSION, version);
    const type = r.u8('type');
    if (!bodyCodecByWireType(type)) throw this.error('ERR_CONTROL_TYPE', 'type', '1 to 7', type);
    const reserved = r.u16('reserved');
    if (reserved !== 0) throw this.error('ERR_CONTROL_FIELD', 'reserved', 0, reserved);
    const bodyLength = r.u32('bodyLength');
    if (bodyLength > MAX_CONTROL_BODY) throw this.error('ERR_CONTROL_LENGTH', 'bodyLength', `<= ${MAX_CONTROL_BODY}`, bodyLength);
    return CONTROL_HEAD_BYTES + bodyLength + CHECKSUM_BYTES;
  }

  private parseFrame(frame: Uint8Array): ControlMessage {
    const checkedEnd = frame.byteLength - CHECKSUM_BYTES;
    const stored = new DataView(frame.buffer, frame.byteOffset + checkedEnd, CHECKSUM_BYTES).getBigUint64(0);
    const actual = checksum64(frame.subarray(0, checkedEnd));
    if (stored !== actual) throw this.error('ERR_CONTROL_CHECKSUM', 'checksum', hex(actual, 16), hex(stored, 16));

    const codec = bodyCodecByWireType(frame[5]!)!;
    const body = frame.subarray(CONTROL_HEAD_BYTES, checkedEnd);
    const r = new ByteReader(body, (field, needed, remaining) =>
      this.error('ERR_CONTROL_LENGTH', field, `${needed} more body bytes`, `${remaining} of ${body.byteLength} left`),
    );
    const fail: FieldError = (field, expected, got) => this.error('ERR_CONTROL_FIELD', field, expected, got);
    const message = codec.decode(r, fail);
    if (r.remaining !== 0) throw this.error('ERR_CONTROL_LENGTH', 'bodyLength', r.offset, body.byteLength);
    codec.check?.(message, fail, this.context);
    if (message.type === 'hello') {
      this.context.blockPages = message.blocks.map((block) => block.byteLength / message.pageSize);
    }
    return message;
  }

  private error(code: string, field: string, expected: string | number, got: string | number): ProtocolError {
    return protocolError(code, { channel: 'control', packet: this.ordinal, field, expected, got });
  }
}

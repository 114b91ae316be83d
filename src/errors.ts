// Error classes with stable codes (undici's pattern). Codes are API: tests, the CLI's exit
// paths and the worker boundary all match on `code`, never on message text.

/** Structured facts about an error (channel, packet, field, expected, got, ...), kept across threads. */
export type ErrorContext = Record<string, string | number | boolean | undefined>;

/** Base class of every error multifd raises on purpose; `code` is stable across releases. */
export class MultifdError extends Error {
  readonly code: string;
  readonly context: ErrorContext;

  constructor(code: string, message: string, options?: { cause?: unknown; context?: ErrorContext }) {
    super(message, options);
    this.code = code;
    this.context = options?.context ?? {};
    this.name = new.target.name;
  }

  /** Plain-object form for NDJSON output and for crossing a worker boundary. */
  toJSON(): SerializedError {
    return { name: this.name, code: this.code, message: this.message, context: this.context };
  }
}

/** Plain-object form of a {@link MultifdError}. */
export interface SerializedError {
  name: string;
  code: string;
  message: string;
  context?: ErrorContext;
}

/**
 * A codec refused its input or could not run: corrupt or truncated payloads, size mismatches,
 * trailing bytes, unavailable backends. Codes: `ERR_CODEC_CORRUPT`, `ERR_CODEC_SIZE_MISMATCH`,
 * `ERR_CODEC_TRAILING_DATA`, `ERR_CODEC_FORMAT`, `ERR_CODEC_PAYLOAD_TOO_LARGE`,
 * `ERR_CODEC_OUTPUT_TOO_SMALL`, `ERR_CODEC_NOMEM`, `ERR_CODEC_UNKNOWN`,
 * `ERR_CODEC_UNAVAILABLE`, `ERR_CODEC_HW_UNAVAILABLE` (hardware required, none usable), `ERR_WASM_TRAP`.
 */
export class CodecError extends MultifdError {}

/**
 * The peer broke the wire protocol: bad magic or version, unknown codec, a field out of range,
 * a checksum mismatch, a truncated packet. `context` names the channel, the packet, the field,
 * what was expected and what came.
 */
export class ProtocolError extends MultifdError {}

/** A connection failed: refused, closed early, timed out. */
export class TransportError extends MultifdError {}

/** Where a protocol violation was seen and what it was. */
export interface Violation {
  /** Data channel id, or 'control'. */
  channel: number | 'control';
  /** Ordinal of the packet or message on its channel (0 = the first). */
  packet?: number;
  field: string;
  expected: string | number;
  got: string | number;
}

/**
 * A ProtocolError whose message follows QEMU's style:
 * `channel 3, packet 17: pageIndex: expected < 262144, got 300000`.
 */
export function protocolError(code: string, v: Violation, cause?: unknown): ProtocolError {
  const where = v.packet === undefined ? `channel ${v.channel}` : `channel ${v.channel}, packet ${v.packet}`;
  return new ProtocolError(code, `${where}: ${v.field}: expected ${v.expected}, got ${v.got}`, {
    cause,
    context: { channel: v.channel, packet: v.packet, field: v.field, expected: v.expected, got: v.got },
  });
}

const rebuilders: Record<string, typeof MultifdError> = {
  MultifdError,
  CodecError,
  ProtocolError,
  TransportError,
};

/** Rebuilds an error serialised by {@link MultifdError.toJSON} into its original class. */
export function deserializeError(e: SerializedError): MultifdError {
  const Class = rebuilders[e.name] ?? MultifdError;
  return new Class(e.code, e.message, { context: e.context });
}

/**
 * Node-style `RangeError` (`code: 'ERR_OUT_OF_RANGE'`) for an option outside its documented
 * range, e.g. `options.level`.
 */
export function outOfRange(name: string, range: string, received: unknown): RangeError {
  const error = new RangeError(
    `The value of "${name}" is out of range. It must be ${range}. Received ${String(received)}`,
  );
  (error as RangeError & { code: string }).code = 'ERR_OUT_OF_RANGE';
  return error;
}

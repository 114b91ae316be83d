// Error classes with stable codes (undici's pattern). Codes are API: tests, the CLI's exit
// paths and the worker boundary all match on `code`, never on message text.

/** Base class of every error multifd raises on purpose; `code` is stable across releases. */
export class MultifdError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }

  /** Plain-object form for NDJSON output and for crossing a worker boundary. */
  toJSON(): SerializedError {
    return { name: this.name, code: this.code, message: this.message };
  }
}

/** Plain-object form of a {@link MultifdError}. */
export interface SerializedError {
  name: string;
  code: string;
  message: string;
}

/**
 * A codec refused its input or could not run: corrupt or truncated payloads, size mismatches,
 * trailing bytes, unavailable backends. Codes: `ERR_CODEC_CORRUPT`, `ERR_CODEC_SIZE_MISMATCH`,
 * `ERR_CODEC_TRAILING_DATA`, `ERR_CODEC_FORMAT`, `ERR_CODEC_PAYLOAD_TOO_LARGE`,
 * `ERR_CODEC_OUTPUT_TOO_SMALL`, `ERR_CODEC_NOMEM`, `ERR_CODEC_UNKNOWN`, `ERR_CODEC_DUPLICATE`,
 * `ERR_CODEC_UNAVAILABLE`, `ERR_WASM_TRAP`.
 */
export class CodecError extends MultifdError {}

const rebuilders: Record<string, new (code: string, message: string) => MultifdError> = {
  MultifdError,
  CodecError,
};

/** Rebuilds an error serialised by {@link MultifdError.toJSON} into its original class. */
export function deserializeError(e: SerializedError): MultifdError {
  const Class = rebuilders[e.name] ?? MultifdError;
  return new Class(e.code, e.message);
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

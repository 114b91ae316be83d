// The one codec interface every backend implements (WASM software codecs, and the native
// hardware shim in front of qatzip, qpl and uadk), mirroring QEMU's MultiFDMethods table: the
// engine only ever sees this shape and never names a codec.

/** Codec ids: QEMU's multifd-compression method names, plus `lz4`. */
export type CodecId = 'none' | 'zlib' | 'zstd' | 'lz4' | 'qatzip' | 'qpl' | 'uadk';

/** Inclusive level range with the default used when `options.level` is omitted. */
export interface LevelRange {
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

/** What a codec is, independent of which backend runs it. */
export interface CodecInfo {
  readonly id: CodecId;
  /** The codec's number in multifd's packet header (QEMU's flag value >> 1; lz4 takes 3, unused by QEMU). */
  readonly wireId: number;
  /** QEMU's MULTIFD_FLAG_* value for this method, or null for lz4 (not a QEMU method). */
  readonly qemuFlag: number | null;
  /** `packet`: one stream over all normal pages of a packet; `page`: one stream per page. */
  readonly unit: 'packet' | 'page';
  /** Levels accepted by `options.level`, or null when the codec has none. */
  readonly levels: LevelRange | null;
  /** One line for `multifd codecs`. */
  readonly summary: string;
  /**
   * The payload is the normal pages verbatim (`none`): a sender may write the pages from
   * guest memory behind the header and a receiver may hash and apply them in place, with no
   * encoder or decoder in between.
   */
  readonly payloadIsPages?: boolean;
}

/** Which implementation runs a codec in this thread, and whether it can run. */
export interface BackendStatus {
  readonly name: 'wasm-simd' | 'wasm' | 'js' | 'native-hw' | 'native-sw-fallback';
  readonly available: boolean;
  /** Why it is (un)available, e.g. "zstd 1.5.4, SIMD build". */
  readonly reason: string;
}

/** Options shared by every codec's encoders and decoders. */
export interface CodecOptions {
  /** Page size in bytes: a power of two from 4096 to 65536. */
  readonly pageSize: number;
  /** The most normal pages one packet may carry (sizes the scratch area once). */
  readonly maxPages: number;
  /** Compression level within `info.levels`; the codec's default when omitted. */
  readonly level?: number;
  /** qatzip, qpl, uadk: how to use their accelerator; every other codec ignores it. */
  readonly accelerator?: AcceleratorOptions;
}

/** How a codec with an accelerator (qatzip, qpl, uadk) uses it. */
export interface AcceleratorOptions {
  /**
   * `prefer` (default, or MULTIFD_HARDWARE) uses the device when there is one and software
   * otherwise; `require` fails with `ERR_CODEC_HW_UNAVAILABLE` instead.
   */
  readonly policy?: HardwarePolicy;
  /** The accelerator library to load instead of its soname (or MULTIFD_QATZIP_LIB, MULTIFD_QPL_LIB, MULTIFD_UADK_LIB). */
  readonly library?: string;
}

/** Whether a codec with an accelerator may fall back to software. */
export type HardwarePolicy = 'prefer' | 'require';

/**
 * Compresses the normal pages of one packet (QEMU's send_prepare). Synchronous: a worker
 * thread is the async boundary.
 */
export interface PacketEncoder {
  /** Pages compressed on an accelerator so far (absent: every page runs in software). */
  readonly hardwarePages?: number;
  /** Upper bound in bytes of the payload for `pageCount` pages. */
  payloadBound(pageCount: number): number;
  /**
   * Writes the payload for `pages` (each exactly `pageSize` bytes, at most `maxPages`) into
   * `out` and returns its length. No pages give an empty payload.
   * @throws CodecError `ERR_CODEC_OUTPUT_TOO_SMALL` when `out` is shorter than needed.
   */
  encode(pages: readonly Uint8Array[], out: Uint8Array): number;
}

/**
 * Decompresses one packet's payload into its destination pages (QEMU's recv). Validates
 * completely before the first byte reaches a destination page: a payload that fails leaves
 * every page untouched.
 */
export interface PacketDecoder {
  /** Pages decompressed on an accelerator so far (absent: every page runs in software). */
  readonly hardwarePages?: number;
  /**
   * @throws CodecError `ERR_CODEC_CORRUPT`, `ERR_CODEC_SIZE_MISMATCH`, `ERR_CODEC_TRAILING_DATA`,
   * `ERR_CODEC_FORMAT` or `ERR_CODEC_PAYLOAD_TOO_LARGE`.
   */
  decode(payload: Uint8Array, pages: readonly Uint8Array[]): void;
}

/** A codec: its description, its backend in this thread, and factories for encoders and decoders. */
export interface Codec {
  readonly info: CodecInfo;
  /** Never throws: reports why the codec cannot run instead. */
  backend(): BackendStatus;
  /** Upper bound in bytes of any valid payload for `pageCount` pages of `pageSize` (receivers reject longer ones). */
  payloadBound(pageCount: number, pageSize: number): number;
  createEncoder(options: CodecOptions): PacketEncoder;
  createDecoder(options: CodecOptions): PacketDecoder;
}

// What every codec shares: option validation, the page-list checks, empty packets, and the
// adapter that turns a C module's compress/decompress pair into a Codec. Each codec file then
// only states its facts (id, wire numbers, levels) and which C entry points it calls.
import { CodecError, outOfRange } from '../errors.js';
import { cModule, type CModule } from '../wasm/c-module.js';
import { wasmVariant, type WasmModuleName } from '../wasm/load.js';
import { checkPageSize } from '../pages.js';
import type { BackendStatus, Codec, CodecInfo, CodecOptions, PacketDecoder, PacketEncoder } from './types.js';

/** Largest `maxPages` accepted: 8 MiB of 64 KiB pages, far above QEMU's 512 KiB packets. */
export const MAX_PAGES_PER_PACKET = 1024;

/** Options after validation and defaults. */
export interface ResolvedOptions {
  readonly pageSize: number;
  readonly maxPages: number;
  readonly level: number;
}

/**
 * Validates codec options against `info`.
 * @throws RangeError `ERR_OUT_OF_RANGE` naming `options.level`, `options.pageSize` or `options.maxPages`.
 */
export function resolveOptions(info: CodecInfo, options: CodecOptions): ResolvedOptions {
  checkPageSize(options.pageSize, 'options.pageSize');
  const { maxPages } = options;
  if (!Number.isInteger(maxPages) || maxPages < 1 || maxPages > MAX_PAGES_PER_PACKET) {
    throw outOfRange('options.maxPages', `an integer from 1 to ${MAX_PAGES_PER_PACKET}`, maxPages);
  }
  const { levels } = info;
  let level = 0;
  if (levels) {
    level = options.level ?? levels.default;
    if (!Number.isInteger(level) || level < levels.min || level > levels.max) {
      throw outOfRange('options.level', `an integer from ${levels.min} to ${levels.max} for ${info.id}`, options.level);
    }
  } else if (options.level !== undefined) {
    throw outOfRange('options.level', `omitted: ${info.id} has no levels`, options.level);
  }
  return { pageSize: options.pageSize, maxPages, level };
}

/** Checks a packet's page list: at most `maxPages` views of exactly `pageSize` bytes each. */
export function checkPages(pages: readonly Uint8Array[], { pageSize, maxPages }: ResolvedOptions): void {
  if (pages.length > maxPages) throw outOfRange('pages.length', `at most ${maxPages}`, pages.length);
  for (let i = 0; i < pages.length; i++) {
    if (pages[i]!.byteLength !== pageSize) throw outOfRange(`pages[${i}].byteLength`, `${pageSize}`, pages[i]!.byteLength);
  }
}

/** An empty packet's payload must be empty too (QEMU: normal_pages 0 ⇒ next_packet_size 0). */
export function checkEmptyPayload(codec: string, payload: Uint8Array): void {
  if (payload.byteLength !== 0) {
    throw new CodecError('ERR_CODEC_TRAILING_DATA', `${codec} decode failed: ${payload.byteLength} payload bytes for a packet without normal pages (expected 0)`);
  }
}

/** Refuses a payload longer than any valid one before copying or decoding it. */
export function checkPayloadBound(codec: string, payload: Uint8Array, bound: number): void {
  if (payload.byteLength > bound) {
    throw new CodecError('ERR_CODEC_PAYLOAD_TOO_LARGE', `${codec} decode failed: payload of ${payload.byteLength} bytes exceeds its bound (expected at most ${bound} bytes)`);
  }
}

/** How a codec drives its C module; every function returns the C entry point's raw result. */
export interface WasmCodecSpec<E> {
  readonly info: CodecInfo;
  readonly module: WasmModuleName;
  /** Payload bound for `pageCount` pages. */
  bound(module: CModule<E>, pageCount: number, pageSize: number): number;
  /** Compresses `pageCount` pages laid out contiguously in the input scratch buffer. */
  compress(module: CModule<E>, pageCount: number, pageSize: number, level: number): number;
  /** Decompresses `payloadBytes` of input scratch into exactly `pageCount` pages of output scratch. */
  decompress(module: CModule<E>, payloadBytes: number, pageCount: number, pageSize: number): number;
}

/** Builds a Codec on an Emscripten C module. Pages cross into WASM memory by one copy each way. */
export function defineWasmCodec<E>(spec: WasmCodecSpec<E>): Codec {
  const { info } = spec;
  const module = (): CModule<E> => cModule<E>(spec.module);
  return {
    info,
    backend(): BackendStatus {
      const name = wasmVariant() === 'simd' ? 'wasm-simd' : 'wasm';
      try {
        return { name, available: true, reason: `${module().version}, ${wasmVariant()} build` };
      } catch (error) {
        return { name, available: false, reason: `cannot load ${spec.module}.wasm: ${(error as Error).message}` };
      }
    },
    payloadBound: (pageCount, pageSize) => spec.bound(module(), pageCount, pageSize),
    createEncoder(options): PacketEncoder {
      const resolved = resolveOptions(info, options);
      const { pageSize, maxPages, level } = resolved;
      const m = module();
      m.reserve(maxPages * pageSize, spec.bound(m, maxPages, pageSize));
      return {
        payloadBound: (pageCount) => spec.bound(m, pageCount, pageSize),
        encode(pages, out) {
          checkPages(pages, resolved);
          if (pages.length === 0) return 0;
          const input = m.input(pages.length * pageSize);
          for (let i = 0; i < pages.length; i++) input.set(pages[i]!, i * pageSize);
          const written = m.check(spec.compress(m, pages.length, pageSize, level), info.id, 'encode');
          if (written > out.byteLength) {
            throw new CodecError('ERR_CODEC_OUTPUT_TOO_SMALL', `${info.id} encode failed: payload of ${written} bytes does not fit the ${out.byteLength}-byte output`);
          }
          out.set(m.output(written));
          return written;
        },
      };
    },
    createDecoder(options): PacketDecoder {
      const resolved = resolveOptions(info, options);
      const { pageSize, maxPages } = resolved;
      const m = module();
      m.reserve(spec.bound(m, maxPages, pageSize), maxPages * pageSize);
      return {
        decode(payload, pages) {
          checkPages(pages, resolved);
          if (pages.length === 0) return checkEmptyPayload(info.id, payload);
          checkPayloadBound(info.id, payload, spec.bound(m, pages.length, pageSize));
          m.input(payload.byteLength).set(payload);
          const expected = pages.length * pageSize;
          m.check(spec.decompress(m, payload.byteLength, pages.length, pageSize), info.id, 'decode', expected);
          const output = m.output(expected);
          for (let i = 0; i < pages.length; i++) pages[i]!.set(output.subarray(i * pageSize, (i + 1) * pageSize));
        },
      };
    },
  };
}

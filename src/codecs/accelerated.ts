// A hardware-accelerated face for a software codec of the same wire format (qatzip, qpl, uadk):
// the native shim drives the vendor library, and whatever the device does not do — no device,
// busy queues, refused pages, decode errors — the WASM codec does, per page where the format
// is per page, as QEMU's methods do. Without a device, QATzip's and QPL's pages go to the WASM
// path (QATzip's own software backup repeats its whole init and leaks a thread key on every
// call without a device: native/README.md), unless MULTIFD_QPL_PATH=software puts QPL's pages
// on libqpl's software path; UADK without its library
// or without a device sends pages raw, as QEMU's "no compression mode" (a UADK receiver without
// a device accepts nothing else), and decodes raw and compressed pages alike. The device and the
// software produce the same bytes on the wire, so either end may run either path.
import { CodecError } from '../errors.js';
import { addonFailure, libraryPath, nativeAddon, PageOutcome, probeHardware, type HardwareVendor, type NativeSession } from '../native/addon.js';
import { checkEmptyPayload, checkPages, checkPayloadBound, resolveOptions, type ResolvedOptions } from './common.js';
import type { BackendStatus, Codec, CodecInfo, CodecOptions, HardwarePolicy, PacketDecoder, PacketEncoder } from './types.js';

/** How an encoder or decoder runs, settled at its first packet. */
type Path = 'device' | 'software' | 'raw';

function policyOf(options: CodecOptions): HardwarePolicy {
  const policy = options.accelerator?.policy ?? (process.env.MULTIFD_HARDWARE as HardwarePolicy | undefined) ?? 'prefer';
  if (policy !== 'prefer' && policy !== 'require') throw new RangeError(`hardware policy must be "prefer" or "require", got "${String(policy)}"`);
  return policy;
}

function unavailable(id: string, why: string): CodecError {
  return new CodecError('ERR_CODEC_HW_UNAVAILABLE', `${id}: hardware required but unavailable: ${why}`, { context: { codec: id, got: why } });
}

/**
 * Checks the policy when an encoder or decoder is made, so `require` fails before the first
 * packet; the session itself opens at the first packet, on the thread that runs it.
 */
function checkPolicy(vendor: HardwareVendor, options: CodecOptions): void {
  if (policyOf(options) !== 'require') return;
  const probe = probeHardware(vendor, options.accelerator?.library);
  if (!probe.available) throw unavailable(vendor, probe.reason);
}

/** The path without a device: UADK sends raw pages (QEMU's sender does), the others compress in software. */
function withoutDevice(vendor: HardwareVendor, compress: boolean): { path: Path } {
  return { path: vendor === 'uadk' && compress ? 'raw' : 'software' };
}

/**
 * Opens the vendor session for one encoder or decoder, or says which path to take without it.
 * @throws CodecError `ERR_CODEC_HW_UNAVAILABLE` under `require` when the device cannot be used.
 */
function openPath(vendor: HardwareVendor, options: CodecOptions, compress: boolean, level: number): { path: Path; session?: NativeSession } {
  const require = policyOf(options) === 'require';
  const probe = probeHardware(vendor, options.accelerator?.library);
  if (require && !probe.available) throw unavailable(vendor, probe.reason);
  // Available without a device only for QPL on libqpl's software path (MULTIFD_QPL_PATH=software).
  if (!probe.loaded || !probe.available) return withoutDevice(vendor, compress);
  try {
    const session = nativeAddon()!.open(vendor, libraryPath(vendor, options.accelerator?.library), compress, level, options.pageSize, options.maxPages, require);
    return { path: 'device', session };
  } catch (error) {
    if (require) throw unavailable(vendor, (error as Error).message);
    return withoutDevice(vendor, compress);
  }
}

function readBe32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/** Where each page's bytes lie in a per-page payload (be32 length table, then the pages). */
function pageSpans(payload: Uint8Array, count: number): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  let at = 4 * count;
  for (let i = 0; i < count; i++) {
    const length = readBe32(payload, 4 * i);
    spans.push([at, length]);
    at += length;
  }
  return spans;
}

/** A one-page payload of a per-page format: the length, then the bytes. */
function onePagePayload(bytes: Uint8Array): Uint8Array {
  const payload = new Uint8Array(4 + bytes.byteLength);
  new DataView(payload.buffer).setUint32(0, bytes.byteLength);
  payload.set(bytes, 4);
  return payload;
}

function tooSmall(id: string, needed: number, out: Uint8Array): CodecError {
  return new CodecError('ERR_CODEC_OUTPUT_TOO_SMALL', `${id} encode failed: payload of ${needed} bytes does not fit the ${out.byteLength}-byte output`);
}

/**
 * The codec `software` with an accelerator from `vendor` in front of it. Same info, same wire
 * format, same bounds; `backend()` says which path this process would take and why.
 */
export function accelerate(software: Codec, vendor: HardwareVendor): Codec {
  return {
    info: software.info,
    payloadBound: software.payloadBound,
    backend: () => acceleratedBackend(software, vendor),
    createEncoder: (options) => acceleratedEncoder(software, vendor, options),
    createDecoder: (options) => acceleratedDecoder(software, vendor, options),
  };
}

function acceleratedBackend(software: Codec, vendor: HardwareVendor): BackendStatus {
  const wasm = software.backend();
  const probe = probeHardware(vendor);
  const rawPages = `raw pages (QEMU's no-device mode), decoded by ${wasm.name}`;
  if (!probe.loaded) {
    const noHardware = `no hardware: ${nativeAddon() ? probe.reason : addonFailure()}`;
    return { ...wasm, reason: vendor === 'uadk' ? `${rawPages} (${wasm.reason}); ${noHardware}` : `${wasm.reason}; ${noHardware}` };
  }
  const detail = `${probe.reason} (${probe.detail})`;
  if (probe.available && probe.device) return { name: 'native-hw', available: true, reason: detail };
  if (probe.available) return { name: 'native-sw-fallback', available: true, reason: `libqpl's software path (MULTIFD_QPL_PATH=software): ${detail}` };
  const fallback = vendor === 'uadk' ? rawPages : `the ${wasm.name} software path`;
  return { name: 'native-sw-fallback', available: wasm.available, reason: `${fallback}: ${detail}` };
}

/**
 * What an accelerated encoder or decoder keeps: its options (the policy checked when it is
 * made), the path its first packet settled, each page's outcome of the last device call, and
 * the pages the device did so far.
 */
class DeviceUse {
  readonly resolved: ResolvedOptions;
  readonly status: Int32Array;
  hardwarePages = 0;
  private opened: { path: Path; session?: NativeSession } | undefined;

  constructor(
    info: CodecInfo,
    private readonly vendor: HardwareVendor,
    private readonly options: CodecOptions,
    private readonly compress: boolean,
  ) {
    this.resolved = resolveOptions(info, options);
    checkPolicy(vendor, options);
    this.status = new Int32Array(this.resolved.maxPages);
  }

  /** The path of this encoder or decoder, settled at its first packet. */
  path(): { path: Path; session?: NativeSession } {
    return (this.opened ??= openPath(this.vendor, this.options, this.compress, this.resolved.level));
  }

  /** Counts the first `pages` pages the device did in its last call. */
  count(pages: number): void {
    for (let i = 0; i < pages; i++) if (this.status[i] === PageOutcome.Hardware) this.hardwarePages++;
  }
}

function acceleratedEncoder(software: Codec, vendor: HardwareVendor, options: CodecOptions): PacketEncoder {
  const { info } = software;
  const perPage = info.unit === 'page';
  const soft = software.createEncoder(options);
  const device = new DeviceUse(info, vendor, options, true);
  const { resolved, status } = device;
  return {
    get hardwarePages() {
      return device.hardwarePages;
    },
    payloadBound: soft.payloadBound,
    encode(pages, out) {
      checkPages(pages, resolved);
      if (pages.length === 0) return 0;
      const opened = device.path();
      if (opened.path === 'software') return soft.encode(pages, out);
      if (opened.path === 'raw') return encodeRaw(info.id, pages, out, resolved.pageSize);
      const bound = soft.payloadBound(pages.length);
      const written = nativeAddon()!.encode(opened.session!, pages, out, status);
      if (written < 0 && out.byteLength < bound) throw tooSmall(info.id, bound, out);
      let result = written;
      // A device's QATzip stream may outgrow the software bound that receivers enforce: then software.
      if (!perPage && (written < 0 || written > bound || status[0] === PageOutcome.NeedsSoftware)) {
        status.fill(PageOutcome.NeedsSoftware, 0, pages.length);
        result = soft.encode(pages, out);
      } else if (perPage && status.subarray(0, pages.length).includes(PageOutcome.NeedsSoftware)) {
        result = patchPages(info.id, soft, status, pages, out);
      }
      device.count(pages.length);
      return result;
    },
  };
}

/** UADK without its library or a device, as QEMU does: every page raw, behind its length. */
function encodeRaw(id: string, pages: readonly Uint8Array[], out: Uint8Array, pageSize: number): number {
  const total = 4 * pages.length + pages.length * pageSize;
  if (total > out.byteLength) throw tooSmall(id, total, out);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  pages.forEach((page, i) => {
    view.setUint32(4 * i, pageSize);
    out.set(page, 4 * pages.length + i * pageSize);
  });
  return total;
}

/** Redoes the pages the device refused (`status`) in software and rebuilds the per-page payload around them. */
function patchPages(id: string, soft: PacketEncoder, status: Int32Array, pages: readonly Uint8Array[], out: Uint8Array): number {
  const spans = pageSpans(out, pages.length);
  const scratch = new Uint8Array(soft.payloadBound(1));
  const parts = pages.map((page, i) => {
    const [at, length] = spans[i]!;
    if (status[i] !== PageOutcome.NeedsSoftware) return out.slice(at, at + length);
    const single = scratch.subarray(0, soft.encode([page], scratch));
    return single.slice(4);
  });
  const total = 4 * pages.length + parts.reduce((n, p) => n + p.byteLength, 0);
  if (total > out.byteLength) throw tooSmall(id, total, out);
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let at = 4 * pages.length;
  parts.forEach((part, i) => {
    view.setUint32(4 * i, part.byteLength);
    out.set(part, at);
    at += part.byteLength;
  });
  return total;
}

function acceleratedDecoder(software: Codec, vendor: HardwareVendor, options: CodecOptions): PacketDecoder {
  const { info } = software;
  const soft = software.createDecoder(options);
  const device = new DeviceUse(info, vendor, options, false);
  const { resolved, status } = device;
  return {
    get hardwarePages() {
      return device.hardwarePages;
    },
    decode(payload, pages) {
      checkPages(pages, resolved);
      if (pages.length === 0) return checkEmptyPayload(info.id, payload);
      checkPayloadBound(info.id, payload, software.payloadBound(pages.length, resolved.pageSize));
      const opened = device.path();
      if (opened.path !== 'device') return soft.decode(payload, pages);
      const outcome = nativeAddon()!.decode(opened.session!, payload, pages, status);
      // The software decoder is the judge of the format: it names what is wrong with a bad payload.
      if (outcome === 2) return soft.decode(payload, pages);
      if (outcome === 1) finishInSoftware(soft, opened.session!, status, payload, pages, resolved.pageSize);
      device.count(pages.length);
    },
  };
}

/**
 * Decodes the pages the device refused (`status`) in software, then writes every page. A page
 * software refuses too sends the whole payload to the software decoder, whose error names the
 * page.
 */
function finishInSoftware(soft: PacketDecoder, session: NativeSession, status: Int32Array, payload: Uint8Array, pages: readonly Uint8Array[], pageSize: number): void {
  const spans = pageSpans(payload, pages.length);
  const decoded = new Map<number, Uint8Array>();
  try {
    pages.forEach((_, i) => {
      if (status[i] !== PageOutcome.NeedsSoftware) return;
      const [at, length] = spans[i]!;
      const page = new Uint8Array(pageSize);
      soft.decode(onePagePayload(payload.subarray(at, at + length)), [page]);
      decoded.set(i, page);
    });
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    status.fill(PageOutcome.NeedsSoftware, 0, pages.length);
    return soft.decode(payload, pages);
  }
  nativeAddon()!.apply(session, pages, status);
  for (const [i, page] of decoded) pages[i]!.set(page);
}

// The hardware codecs through the real vendor libraries, built from the pinned upstream archives
// by `npm run build:vendor-libs` into native/vendor-build/ (QPL 1.6.0, QATzip 1.3.1 on qatlib
// 26.08.0, UADK 2.10). No machine here has a device, so these drive the libraries' software
// paths and their no-device answers: libqpl's software path (MULTIFD_QPL_PATH=software), QATzip's
// software backup (opened by these tests only: it leaks a pthread key per call, so the codec
// never uses it), UADK's failed init. Skipped, with the reason, where the shim
// (npm run build:native) or the vendor build is missing.
import { spawnSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { qatzip, softwareQatzip } from '../../src/codecs/qatzip.js';
import { qpl, softwareQpl } from '../../src/codecs/qpl.js';
import type { Codec } from '../../src/codecs/types.js';
import { softwareUadk, uadk } from '../../src/codecs/uadk.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { nativeAddon, PageOutcome, probeHardware, type HardwareVendor, type NativeSession } from '../../src/native/addon.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { MAIN } from '../helpers/cli.js';
import { encodePayload } from '../helpers/codec-conformance.js';
import { withKnobs, zlibDecode } from '../helpers/hardware.js';
import { filledMemory, sameContent } from '../helpers/migration.js';
import { blankPages, concatPages } from '../helpers/pages.js';
import { failure } from '../helpers/support.js';
import { ARCHIVE_VERSION, everyKindOfPage, VENDOR_LIBRARY, vendorLibrariesSkipReason } from '../helpers/vendor-libraries.js';

const PAGE = 4096;
const SOFTWARE_QPL = { MULTIFD_QPL_PATH: 'software' };
const SOFTWARE: Record<HardwareVendor, Codec> = { qatzip: softwareQatzip, qpl: softwareQpl, uadk: softwareUadk };

const test = suite('the hardware codecs through the real vendor libraries (native/vendor-build)');
const reason = vendorLibrariesSkipReason();
if (reason) console.log(`  skipped: ${reason}`);
const register = reason ? test.skip : test;

/** Runs `use` on a shim session of the real library, closing it after. */
function withSession<T>(vendor: HardwareVendor, compress: boolean, pages: number, use: (session: NativeSession) => T, level = 1): T {
  const session = nativeAddon()!.open(vendor, VENDOR_LIBRARY[vendor], compress, level, PAGE, pages, false, true);
  try {
    return use(session);
  } finally {
    nativeAddon()!.close(session);
  }
}

/** The shim's payload for `pages` and each page's outcome. */
function shimEncode(vendor: HardwareVendor, pages: Uint8Array[], level = 1) {
  return withSession(vendor, true, pages.length, (session) => {
    const out = new Uint8Array(SOFTWARE[vendor].payloadBound(pages.length, PAGE));
    const status = new Int32Array(pages.length);
    const written = nativeAddon()!.encode(session, pages, out, status);
    assert.ok(written > 0, `${vendor} encode wrote ${written}`);
    return { payload: out.slice(0, written), status: [...status] };
  }, level);
}

/** The shim's decode of `payload` into fresh pages, with its outcome and each page's. */
function shimDecode(vendor: HardwareVendor, payload: Uint8Array, count: number) {
  return withSession(vendor, false, count, (session) => {
    const pages = blankPages(count, PAGE, 0xee);
    const status = new Int32Array(count);
    const outcome = nativeAddon()!.decode(session, payload, pages, status);
    return { outcome, pages, status: [...status] };
  });
}

/** Decodes with our WASM codec. */
function wasmDecode(vendor: HardwareVendor, payload: Uint8Array, count: number): Uint8Array {
  const pages = blankPages(count, PAGE, 0xee);
  SOFTWARE[vendor].createDecoder({ pageSize: PAGE, maxPages: count }).decode(payload, pages);
  return concatPages(pages);
}

const allLibrarySoftware = (status: number[]) => status.every((s) => s === PageOutcome.LibrarySoftware);

// ---- QPL --------------------------------------------------------------------------------------

register('qpl: libqpl.so.1 reports QPL 1.6.0 and no IAA device; MULTIFD_QPL_PATH=software makes its software path available', () => {
  const auto = probeHardware('qpl', VENDOR_LIBRARY.qpl);
  assert.ok(auto.loaded, auto.reason);
  assert.is(auto.available, false);
  assert.is(auto.device, false);
  assert.match(auto.reason, 'no IAA device');
  assert.is(auto.version, ARCHIVE_VERSION.qpl);
  assert.match(auto.detail, `QPL ${ARCHIVE_VERSION.qpl}`);
  const software = withKnobs(SOFTWARE_QPL, () => probeHardware('qpl', VENDOR_LIBRARY.qpl));
  assert.ok(software.available, software.reason);
  assert.is(software.device, false);
  assert.match(software.reason, "libqpl's software path");
  assert.match(software.reason, 'no IAA device');
});

register("qpl: libqpl's software path compresses every page kind, and our WASM decoder and node:zlib read each page back", () => {
  const pages = everyKindOfPage(PAGE);
  const { payload, status } = withKnobs(SOFTWARE_QPL, () => shimEncode('qpl', pages));
  assert.ok(allLibrarySoftware(status), `outcomes ${status}`);
  const lengths = pages.map((_, i) => new DataView(payload.buffer).getUint32(4 * i));
  assert.ok(lengths.some((n) => n < PAGE / 8), 'no page compressed well');
  assert.ok(lengths.some((n) => n === PAGE), 'no page was left raw (the random ones do not shrink)');
  assert.equal(wasmDecode('qpl', payload, pages.length), concatPages(pages));
  assert.equal(zlibDecode('qpl', payload, pages.length, PAGE), concatPages(pages));
});

register("qpl: libqpl's software path decodes every page kind our WASM encoder wrote", () => {
  const pages = everyKindOfPage(PAGE, 4, 2);
  const payload = encodePayload(softwareQpl, pages, PAGE);
  const decoded = withKnobs(SOFTWARE_QPL, () => shimDecode('qpl', payload, pages.length));
  assert.is(decoded.outcome, 0);
  assert.ok(allLibrarySoftware(decoded.status), `outcomes ${decoded.status}`);
  assert.equal(concatPages(decoded.pages), concatPages(pages));
});

register('qpl: the codec under MULTIFD_QPL_PATH=software sends and receives through libqpl, counted as software pages; requiring hardware fails', async () => {
  const options = { pageSize: PAGE, maxPages: 128, accelerator: { policy: 'prefer', library: VENDOR_LIBRARY.qpl } } as const;
  const pages = everyKindOfPage(PAGE, 16, 3).slice(0, 64);
  await withKnobs(SOFTWARE_QPL, async () => {
    const encoder = qpl.createEncoder(options);
    const out = new Uint8Array(encoder.payloadBound(pages.length));
    const payload = out.slice(0, encoder.encode(pages, out));
    assert.is(encoder.hardwarePages, 0);
    // libqpl's bytes, not the WASM encoder's: the two deflaters differ.
    assert.not.equal(payload, encodePayload(softwareQpl, pages, PAGE));
    const decoded = blankPages(pages.length, PAGE);
    qpl.createDecoder(options).decode(payload, decoded);
    assert.equal(concatPages(decoded), concatPages(pages));
    const required = qpl.createEncoder({ ...options, accelerator: { ...options.accelerator, policy: 'require' } });
    const error = await failure(() => required.encode(pages, out), 'ERR_CODEC_HW_UNAVAILABLE');
    assert.match(error.message, 'MULTIFD_QPL_PATH=software');
  });
});

register('qpl: by default (no device) the codec takes the WASM path, and requiring hardware fails naming the missing device', async () => {
  const options = { pageSize: PAGE, maxPages: 16, accelerator: { policy: 'prefer', library: VENDOR_LIBRARY.qpl } } as const;
  const pages = everyKindOfPage(PAGE, 2).slice(0, 16);
  await withKnobs({ MULTIFD_QPL_PATH: 'auto' }, async () => {
    const encoder = qpl.createEncoder(options);
    const out = new Uint8Array(encoder.payloadBound(pages.length));
    assert.equal(out.slice(0, encoder.encode(pages, out)), encodePayload(softwareQpl, pages, PAGE));
    const required = { ...options, accelerator: { ...options.accelerator, policy: 'require' } } as const;
    const error = await failure(() => qpl.createEncoder(required), 'ERR_CODEC_HW_UNAVAILABLE');
    assert.match(error.message, 'no IAA device');
  });
});

register("qpl: a migration over 127.0.0.1 runs libqpl's software path on the pool's workers at both ends", async () => {
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }], seed: 7 });
  const accelerator = { policy: 'prefer', library: VENDOR_LIBRARY.qpl } as const;
  const pool = new WorkerPool({ threads: 2 });
  try {
    await withKnobs(SOFTWARE_QPL, async () => {
      let destination: GuestMemory | undefined;
      const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool, accelerator });
      const [stats] = await Promise.all([
        migrate({ source: guestMemorySource(memory), connect: () => connect(parseEndpoint(receiver.address)), codec: 'qpl', channels: 2, pool, accelerator }),
        receiver.result,
      ]);
      assert.is(stats.status, 'completed');
      assert.is(stats['destination-checksum'], stats['source-checksum']);
      assert.ok(sameContent(destination!, memory));
      assert.is(stats['hardware-pages'], 0);
    });
  } finally {
    await pool.close();
  }
});

// ---- QATzip -----------------------------------------------------------------------------------

register('qatzip: libqatzip.so.3 (QATzip 1.3.1, file version 3.2.0) loads with qatlib and finds no QAT device', async () => {
  const probe = probeHardware('qatzip', VENDOR_LIBRARY.qatzip);
  assert.ok(probe.loaded, probe.reason);
  assert.is(probe.available, false);
  assert.match(probe.reason, 'no QAT device');
  assert.is(probe.version, ARCHIVE_VERSION.qatzip);
  assert.match(probe.detail, 'QATzip 1.3.0 or later');
  // The session the codec would open is refused, so its pages never reach the software backup.
  const error = await failure(() => nativeAddon()!.open('qatzip', VENDOR_LIBRARY.qatzip, true, 1, PAGE, 16, false), 'ERR_CODEC_HW_UNAVAILABLE');
  assert.match(error.message, 'no QAT device');
});

register("qatzip: without a device the codec's packets are the WASM encoder's, byte for byte", () => {
  const pages = everyKindOfPage(PAGE, 2);
  const encoder = qatzip.createEncoder({ pageSize: PAGE, maxPages: pages.length, accelerator: { policy: 'prefer', library: VENDOR_LIBRARY.qatzip } });
  const out = new Uint8Array(encoder.payloadBound(pages.length));
  assert.equal(out.slice(0, encoder.encode(pages, out)), encodePayload(softwareQatzip, pages, PAGE));
  assert.is(encoder.hardwarePages, 0);
});

// One packet of every page kind per level: 9 compressions and 9 decompressions on the backup.
register("qatzip: QATzip's software backup compresses every page kind at levels 1 to 9, and our WASM decoder and node:zlib read it", () => {
  const pages = everyKindOfPage(PAGE);
  for (let level = 1; level <= 9; level++) {
    const { payload, status } = shimEncode('qatzip', pages, level);
    assert.ok(allLibrarySoftware(status), `level ${level}: outcomes ${status}`);
    // A gzip member with QATzip's 'QZ' extra field: FLG.FEXTRA, then SI1 SI2 = 'Q' 'Z'.
    assert.equal([...payload.subarray(0, 4)], [0x1f, 0x8b, 8, 4], `level ${level}: gzip header`);
    assert.equal([...payload.subarray(12, 14)], [0x51, 0x5a], `level ${level}: QZ extra field`);
    assert.equal(wasmDecode('qatzip', payload, pages.length), concatPages(pages), `level ${level}: WASM decode`);
    assert.equal(zlibDecode('qatzip', payload, pages.length, PAGE), concatPages(pages), `level ${level}: node:zlib decode`);
  }
});

register("qatzip: QATzip's qzDecompress reads every page kind our WASM encoder wrote at levels 1 to 9", () => {
  const pages = everyKindOfPage(PAGE, 4, 2);
  for (let level = 1; level <= 9; level++) {
    const payload = encodePayload(softwareQatzip, pages, PAGE, level);
    const decoded = shimDecode('qatzip', payload, pages.length);
    assert.is(decoded.outcome, 0, `level ${level}`);
    assert.ok(allLibrarySoftware(decoded.status), `level ${level}: outcomes ${decoded.status}`);
    assert.equal(concatPages(decoded.pages), concatPages(pages), `level ${level}`);
  }
});

// ---- UADK -------------------------------------------------------------------------------------

register('uadk: libwd_comp.so.2 (UADK 2.10.0) loads, wd_comp_init2_ finds no device, and the probe says why', async () => {
  const probe = probeHardware('uadk', VENDOR_LIBRARY.uadk);
  assert.ok(probe.loaded, probe.reason);
  assert.is(probe.available, false);
  assert.match(probe.reason, 'no UADK device');
  assert.match(probe.reason, 'wd_comp_init2_');
  assert.is(probe.version, ARCHIVE_VERSION.uadk);
  // No session after the failed init (wd_comp_alloc_sess would crash): refused with the reason.
  const error = await failure(() => nativeAddon()!.open('uadk', VENDOR_LIBRARY.uadk, true, 1, PAGE, 16, false), 'ERR_CODEC_HW_UNAVAILABLE');
  assert.match(error.message, 'no UADK device');
});

register('uadk: with the real library and no device the codec sends every page raw, as QEMU, and decodes them', () => {
  const options = { pageSize: PAGE, maxPages: 64, accelerator: { policy: 'prefer', library: VENDOR_LIBRARY.uadk } } as const;
  const pages = everyKindOfPage(PAGE);
  const encoder = uadk.createEncoder(options);
  const out = new Uint8Array(encoder.payloadBound(pages.length));
  const payload = out.slice(0, encoder.encode(pages, out));
  assert.is(encoder.hardwarePages, 0);
  assert.is(payload.byteLength, pages.length * (4 + PAGE));
  for (let i = 0; i < pages.length; i++) assert.is(new DataView(payload.buffer).getUint32(4 * i), PAGE);
  assert.equal(wasmDecode('uadk', payload, pages.length), concatPages(pages));
  const decoded = blankPages(pages.length, PAGE);
  uadk.createDecoder(options).decode(payload, decoded);
  assert.equal(concatPages(decoded), concatPages(pages));
});

// ---- the CLI ----------------------------------------------------------------------------------

register('multifd codecs names each real library with its version and why no device was used', () => {
  const env = { ...process.env, MULTIFD_QATZIP_LIB: VENDOR_LIBRARY.qatzip, MULTIFD_QPL_LIB: VENDOR_LIBRARY.qpl, MULTIFD_UADK_LIB: VENDOR_LIBRARY.uadk };
  const run = spawnSync(process.execPath, ['--import', 'tsx', MAIN, 'codecs', '--json'], { env, encoding: 'utf8' });
  assert.is(run.status, 0, run.stderr);
  const rows = run.stdout.trim().split('\n').map((line) => JSON.parse(line) as { id: string; library?: { version: string; device: boolean; reason: string } });
  const expected: Record<HardwareVendor, string> = { qatzip: 'no QAT device', qpl: 'no IAA device', uadk: 'no UADK device' };
  for (const [vendor, words] of Object.entries(expected) as Array<[HardwareVendor, string]>) {
    const library = rows.find((row) => row.id === vendor)?.library;
    assert.ok(library, `${vendor}: no library in ${run.stdout}`);
    assert.is(library.version, ARCHIVE_VERSION[vendor]);
    assert.is(library.device, false);
    assert.match(library.reason, words);
  }
});

test.run();

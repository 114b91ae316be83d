// The hardware codecs through the native shim and the fake vendor libraries, on this thread:
// the shared conformance suite with the device required, and both directions between the
// device path and the WASM software path for every page kind, with node:zlib as the oracle.
// (test/integration/hardware.test.ts runs the same path on pool workers and over TCP.)
// Skipped, with the reason, where the shim is not built or gcc and zlib1g-dev are missing.
import { spawnSync } from 'node:child_process';
import { deflateRawSync } from 'node:zlib';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../../src/codecs/registry.js';
import { softwareQatzip } from '../../../src/codecs/qatzip.js';
import { softwareQpl } from '../../../src/codecs/qpl.js';
import { softwareUadk } from '../../../src/codecs/uadk.js';
import type { Codec } from '../../../src/codecs/types.js';
import type { HardwareVendor } from '../../../src/native/addon.js';
import { conformance, encodePayload, guardedPages, pageEntries, pagePayload } from '../../helpers/codec-conformance.js';
import { probeHardware } from '../../../src/native/addon.js';
import { DEVICE_KNOB, fakeLibrary, fakeProgram, hardwareSkipReason, onLibrary, VENDORS, withKnobs, zlibDecode } from '../../helpers/hardware.js';
import { craftedPage, CROSSING_SEEDS, libdeflateRaw } from '../../helpers/iaa-pages.js';
import { PAGE_KINDS, concatPages, makePages } from '../../helpers/pages.js';

const SOFTWARE: Record<HardwareVendor, Codec> = { qatzip: softwareQatzip, qpl: softwareQpl, uadk: softwareUadk };
const PAGE = 4096;
const reason = hardwareSkipReason();
if (reason) console.log(`  skipped: ${reason}`);
// Every fake here has its device: a knob nothing else reads.
else for (const vendor of VENDORS) process.env[DEVICE_KNOB[vendor]] = '1';

/** The codec on its fake device, hardware required; made when a test runs, never when skipped. */
const onDevice = (vendor: HardwareVendor): Codec => (reason ? getCodec(vendor) : onLibrary(getCodec(vendor), fakeLibrary(vendor)));

for (const vendor of VENDORS) conformance(onDevice(vendor), { title: `codec ${vendor} on its fake device: conformance`, skip: Boolean(reason) });

const test = suite('hardware codecs: device path and software path are interchangeable');
const register = reason ? test.skip : test;

for (const vendor of VENDORS) {
  for (const kind of PAGE_KINDS) {
    register(`${vendor}: ${kind} pages made by the device decode with the WASM codec and node:zlib, and back`, () => {
      const device = onDevice(vendor);
      const software = SOFTWARE[vendor];
      const pages = makePages(kind, 128, PAGE, 5);
      const encoder = device.createEncoder({ pageSize: PAGE, maxPages: 128 });
      const out = new Uint8Array(encoder.payloadBound(128));
      const payload = out.subarray(0, encoder.encode(pages, out));
      assert.is(encoder.hardwarePages, 128, 'every page went through the device');
      const bySoftware = guardedPages(128, PAGE);
      software.createDecoder({ pageSize: PAGE, maxPages: 128 }).decode(payload, bySoftware.pages);
      assert.equal(concatPages(bySoftware.pages), concatPages(pages));
      assert.equal(zlibDecode(vendor, payload, 128, PAGE), concatPages(pages));

      const decoder = device.createDecoder({ pageSize: PAGE, maxPages: 128 });
      const byDevice = guardedPages(128, PAGE);
      const fromSoftware = encodePayload(software, pages, PAGE);
      decoder.decode(fromSoftware, byDevice.pages);
      assert.equal(concatPages(byDevice.pages), concatPages(pages));
      assert.ok(byDevice.guardsIntact());
      // QATzip leaves inputs under input_sz_thrshold (1024 bytes) to its software path.
      assert.is(decoder.hardwarePages, vendor === 'qatzip' && fromSoftware.byteLength < 1024 ? 0 : 128);
    });
  }
}

register('qatzip: the device writes one QZ gzip member per 64 KiB of input', () => {
  const encoder = onDevice('qatzip').createEncoder({ pageSize: PAGE, maxPages: 128 });
  const out = new Uint8Array(encoder.payloadBound(128));
  const payload = out.subarray(0, encoder.encode(makePages('text', 128, PAGE, 9), out));
  let members = 0;
  for (let at = 0; at < payload.byteLength; members++) {
    assert.equal([...payload.subarray(at, at + 16)], [0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 12, 0, 0x51, 0x5a, 8, 0]);
    const view = new DataView(payload.buffer, payload.byteOffset + at);
    assert.is(view.getUint32(16, true), 65536, 'src_sz');
    at += 24 + view.getUint32(20, true) + 8;
  }
  assert.is(members, 8);
});

register('qpl: the device refuses a stream whose back-reference reaches past 4 KiB (BAD_DIST), and software decodes it', () => {
  // A 64 KiB page whose second half repeats its first 4 KiB 32 KiB later: a 32 KiB-window
  // encoder reaches back that far, IAA's 4 KiB history cannot.
  const pageSize = 65536;
  const page = new Uint8Array(pageSize);
  const half = makePages('random', 1, 4096, 3)[0]!;
  page.set(half, 0);
  page.set(half, 32768);
  const stream = deflateRawSync(page, { windowBits: 15 });
  const payload = new Uint8Array(4 + stream.byteLength);
  new DataView(payload.buffer).setUint32(0, stream.byteLength);
  payload.set(stream, 4);
  const decoder = onDevice('qpl').createDecoder({ pageSize, maxPages: 1 });
  const [destination] = guardedPages(1, pageSize).pages;
  decoder.decode(payload, [destination!]);
  assert.equal(destination, page);
  assert.is(decoder.hardwarePages, 0, 'the page was decoded in software');
});

register('qpl: a packet of 512 pages meets an IAA work queue of 128 jobs, as QEMU sizes it: the shim submits in batches the queue takes, every page on the device', () => {
  // A library of its own: the fake counts the jobs in its queue process-wide.
  const codec = onLibrary(getCodec('qpl'), fakeLibrary('qpl', 'queue-depth'));
  const pages = makePages('text', 512, PAGE, 11);
  withKnobs({ FAKE_QPL_QUEUE: '128' }, () => {
    const encoder = codec.createEncoder({ pageSize: PAGE, maxPages: 512 });
    const out = new Uint8Array(encoder.payloadBound(512));
    const payload = out.subarray(0, encoder.encode(pages, out));
    assert.is(encoder.hardwarePages, 512, 'pages the queue refused went to software');
    const decoder = codec.createDecoder({ pageSize: PAGE, maxPages: 512 });
    const decoded = guardedPages(512, PAGE);
    decoder.decode(payload, decoded.pages);
    assert.equal(concatPages(decoded.pages), concatPages(pages));
    assert.is(decoder.hardwarePages, 512, 'pages the queue refused went to software');
  });
  // The same packet where the queue holds fewer jobs than a batch: the knob bites.
  withKnobs({ FAKE_QPL_QUEUE: '64' }, () => {
    const encoder = codec.createEncoder({ pageSize: PAGE, maxPages: 512 });
    const out = new Uint8Array(encoder.payloadBound(512));
    encoder.encode(pages, out);
    assert.ok((encoder.hardwarePages ?? 0) < 512, `${encoder.hardwarePages} of 512 pages on the device`);
  });
});

for (const vendor of ['qpl', 'uadk'] as const) {
  register(`${vendor}: a page neither the device nor software can decode fails the packet naming that page, writing nothing`, () => {
    const pages = makePages('text', 4, PAGE, 6);
    const payload = encodePayload(SOFTWARE[vendor], pages, PAGE).slice();
    const view = new DataView(payload.buffer);
    const start = 16 + view.getUint32(0) + view.getUint32(4);
    assert.ok(view.getUint32(8) < PAGE, 'page 2 is compressed');
    // A block type of 3 (reserved) right where page 2's DEFLATE data starts.
    payload[start + (vendor === 'uadk' ? 2 : 0)] = 0x07;
    const destination = guardedPages(4, PAGE);
    assert.throws(
      () => onDevice(vendor).createDecoder({ pageSize: PAGE, maxPages: 4 }).decode(payload, destination.pages),
      (error: Error & { code?: string }) => error.code === 'ERR_CODEC_CORRUPT' && error.message.includes('page 2'),
    );
    assert.ok(destination.untouched());
  });
}

const iaa = suite('qpl: a fake device that refuses crossing code-length runs as IAA does (FAKE_QPL_REJECT_D16=1)');
const registerIaa = reason ? iaa.skip : iaa;
const REJECT_D16 = { FAKE_QPL_REJECT_D16: '1' };
const straddling = CROSSING_SEEDS.straddling.map(craftedPage);
const openingDistances = CROSSING_SEEDS.openingDistances.map(craftedPage);

registerIaa('the device answers 206 for a run across the boundary and 204 for a 16 opening the distance lengths; our qpl pages, its software path and a device without the knob get 0', () => {
  const library = fakeLibrary('qpl', 'reject-d16-tool');
  const decode = (stream: Uint8Array, path: 'hardware' | 'software', knob = '1') => {
    const run = withKnobs({ FAKE_QPL_REJECT_D16: knob }, () => spawnSync(fakeProgram('qpl-decode'), [library, String(PAGE), path], { input: stream, encoding: 'utf8' }));
    assert.is(run.status, 0, run.stderr);
    return run.stdout.trim();
  };
  const ours = pageEntries(encodePayload(softwareQpl, [...straddling, ...openingDistances], PAGE), straddling.length + openingDistances.length);
  for (const page of straddling) assert.is(decode(libdeflateRaw(page), 'hardware'), '206 0');
  for (const page of openingDistances) assert.is(decode(libdeflateRaw(page), 'hardware'), '204 0');
  for (const page of [...straddling, ...openingDistances]) {
    assert.is(decode(libdeflateRaw(page), 'software'), `0 ${PAGE}`);
    assert.is(decode(libdeflateRaw(page), 'hardware', '0'), `0 ${PAGE}`);
  }
  for (const entry of ours) assert.is(decode(entry, 'hardware'), `0 ${PAGE}`);
});

registerIaa('through the shim, that device decodes every page our qpl encoder writes, the crossing pages included', () => {
  const pages = [...straddling, ...openingDistances, ...makePages('mixed', 24, PAGE, 12), ...Array.from({ length: 96 }, (_, i) => craftedPage(i + 1))];
  const payload = encodePayload(softwareQpl, pages, PAGE);
  withKnobs(REJECT_D16, () => {
    const decoder = onDevice('qpl').createDecoder({ pageSize: PAGE, maxPages: pages.length });
    const destination = guardedPages(pages.length, PAGE);
    decoder.decode(payload, destination.pages);
    assert.equal(concatPages(destination.pages), concatPages(pages));
    assert.is(decoder.hardwarePages, pages.length);
  });
});

registerIaa('that device refuses libdeflate\'s own streams of the crossing pages (what qpl sent before its fix-up), and the software path decodes them', () => {
  const crossing = [...straddling, ...openingDistances];
  const pages = [...crossing, ...makePages('text', 8, PAGE, 13)];
  const payload = pagePayload(pages.map((page) => libdeflateRaw(page)));
  withKnobs(REJECT_D16, () => {
    const decoder = onDevice('qpl').createDecoder({ pageSize: PAGE, maxPages: pages.length });
    const destination = guardedPages(pages.length, PAGE);
    decoder.decode(payload, destination.pages);
    assert.equal(concatPages(destination.pages), concatPages(pages));
    assert.is(decoder.hardwarePages, pages.length - crossing.length);
  });
});

const probe = suite('hardware codecs: the probe and the backend say why');
const registerProbe = reason ? probe.skip : probe;

registerProbe('the probe names the cause: no work queue or no permission, no libaccel-config, no pinned memory, permission denied', () => {
  const qpl = (variant: string, init: string) => withKnobs({ FAKE_QPL_HW: '0', FAKE_QPL_INIT: init }, () => probeHardware('qpl', fakeLibrary('qpl', variant)));
  assert.match(qpl('work-queues', '503').reason, 'no usable IAA work queue');
  assert.match(qpl('work-queues', '503').reason, '/dev/iax/wq');
  assert.match(qpl('libaccel', '501').reason, 'libaccel-config.so.1 not found');
  const uadk = withKnobs({ FAKE_UADK_HW: '0', FAKE_UADK_INIT: '13' }, () => probeHardware('uadk', fakeLibrary('uadk', 'permission')));
  assert.match(uadk.reason, 'Permission denied');
  assert.is(uadk.available, false);
});

registerProbe('qatzip without pinned memory (no huge pages) still runs on the device, from normal memory', () => {
  withKnobs({ FAKE_QZ_HW: '1', FAKE_QZ_PINNED: '0' }, () => {
    const library = fakeLibrary('qatzip', 'no-huge-pages');
    const found = probeHardware('qatzip', library);
    assert.ok(found.available);
    assert.match(found.reason, 'no pinned memory');
    const encoder = onLibrary(getCodec('qatzip'), library).createEncoder({ pageSize: PAGE, maxPages: 32 });
    const pages = makePages('text', 32, PAGE, 4);
    const out = new Uint8Array(encoder.payloadBound(32));
    const payload = out.subarray(0, encoder.encode(pages, out));
    assert.is(encoder.hardwarePages, 32);
    assert.equal(zlibDecode('qatzip', payload, 32, PAGE), concatPages(pages));
  });
});

registerProbe('a codec reports native-hw with a device, native-sw-fallback with its library alone, its WASM backend without the library', () => {
  const backend = (vendor: HardwareVendor, variant: string, device: string) =>
    withKnobs({ [`MULTIFD_${vendor.toUpperCase()}_LIB`]: fakeLibrary(vendor, variant), [DEVICE_KNOB[vendor]]: device }, () => getCodec(vendor).backend());
  for (const vendor of VENDORS) {
    const withDevice = backend(vendor, 'backend-device', '1');
    assert.equal([withDevice.name, withDevice.available], ['native-hw', true], withDevice.reason);
    const withoutDevice = backend(vendor, 'backend-no-device', '0');
    assert.equal([withoutDevice.name, withoutDevice.available], ['native-sw-fallback', true], withoutDevice.reason);
    const absent = withKnobs({ [`MULTIFD_${vendor.toUpperCase()}_LIB`]: '/nonexistent/lib.so' }, () => getCodec(vendor).backend());
    assert.ok(absent.name === 'wasm-simd' || absent.name === 'wasm', absent.name);
    assert.ok(absent.available);
    assert.match(absent.reason, 'no hardware: cannot load /nonexistent/lib.so');
    // UADK without a device sends raw pages, whether its library is there or not.
    for (const status of [withoutDevice, absent]) assert.is(status.reason.startsWith("raw pages (QEMU's no-device mode)"), vendor === 'uadk', status.reason);
  }
});

test.run();
iaa.run();
probe.run();

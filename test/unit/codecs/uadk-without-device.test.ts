// `uadk` without its library (or without a device: test/integration/hardware.test.ts) does what
// QEMU's UADK sender does without a device: every page raw, behind its length. A UADK receiver
// without a device accepts nothing else; ours still decodes compressed pages too. Needs no
// native shim: without it the library cannot load either.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { uadk, softwareUadk } from '../../../src/codecs/uadk.js';
import type { Codec } from '../../../src/codecs/types.js';
import { encodePayload, guardedPages, pageEntries } from '../../helpers/codec-conformance.js';
import { withKnobs } from '../../helpers/hardware.js';
import { PAGE_KINDS, concatPages, makePages } from '../../helpers/pages.js';

const PAGE = 4096;
const LIBRARY = '/nonexistent/libwd_comp.so.2';
const test = suite('uadk without its library');

/** The uadk codec on a library path that does not exist, hardware preferred. */
const withoutLibrary: Codec = {
  ...uadk,
  createEncoder: (options) => uadk.createEncoder({ ...options, accelerator: { policy: 'prefer', library: LIBRARY } }),
  createDecoder: (options) => uadk.createDecoder({ ...options, accelerator: { policy: 'prefer', library: LIBRARY } }),
};

test('sends every page raw, length = page size, as QEMU\'s sender without a device', () => {
  for (const kind of PAGE_KINDS) {
    const pages = makePages(kind, 16, PAGE, 21);
    const payload = encodePayload(withoutLibrary, pages, PAGE);
    assert.is(payload.byteLength, pages.length * (4 + PAGE), kind);
    assert.equal(pageEntries(payload, pages.length), pages, kind);
  }
});

test('decodes raw payloads and compressed ones (what a UADK device sends) alike', () => {
  const pages = makePages('mixed', 32, PAGE, 22);
  for (const encoder of [withoutLibrary, softwareUadk]) {
    const payload = encodePayload(encoder, pages, PAGE);
    const destination = guardedPages(pages.length, PAGE);
    withoutLibrary.createDecoder({ pageSize: PAGE, maxPages: pages.length }).decode(payload, destination.pages);
    assert.equal(concatPages(destination.pages), concatPages(pages));
    assert.ok(destination.guardsIntact());
  }
  assert.ok(encodePayload(softwareUadk, pages, PAGE).byteLength < pages.length * PAGE, 'the software payload is compressed');
});

test('its backend says pages go raw, decoded in WASM, and why there is no hardware', () => {
  const status = withKnobs({ MULTIFD_UADK_LIB: LIBRARY }, () => uadk.backend());
  assert.ok(status.name === 'wasm-simd' || status.name === 'wasm', status.name);
  assert.ok(status.available);
  assert.match(status.reason, `raw pages (QEMU's no-device mode), decoded by ${status.name}`);
  assert.match(status.reason, 'no hardware:');
});

test.run();

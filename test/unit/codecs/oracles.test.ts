// Reference decoders and encoders, both directions: node:zlib for the DEFLATE family, the
// Debian zstd and lz4 command-line tools for their frames.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as nodeZlib from 'node:zlib';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../../src/codecs/registry.js';
import { softwareUadk } from '../../../src/codecs/uadk.js';
import { encodePayload, guardedPages, pageEntries, pagePayload } from '../../helpers/codec-conformance.js';
import { concatPages, makePages } from '../../helpers/pages.js';

const PAGE = 4096;
const pages = makePages('mixed', 128, PAGE, 42);
const data = concatPages(pages);

function decodeWith(id: string, payload: Uint8Array, count = pages.length): Uint8Array {
  const destination = guardedPages(count, PAGE);
  getCodec(id).createDecoder({ pageSize: PAGE, maxPages: count }).decode(payload, destination.pages);
  assert.ok(destination.guardsIntact());
  return concatPages(destination.pages);
}

const zlib = suite('oracle: node:zlib');

zlib('node:zlib inflates our zlib payloads at every level', () => {
  for (let level = 1; level <= 9; level++) {
    assert.equal(new Uint8Array(nodeZlib.inflateSync(encodePayload(getCodec('zlib'), pages, PAGE, level))), data);
  }
});

zlib('we decode node:zlib deflate output at every level', () => {
  for (let level = 1; level <= 9; level++) {
    assert.equal(decodeWith('zlib', nodeZlib.deflateSync(data, { level })), data);
  }
});

zlib('node:zlib inflateRaw with a 4 KiB window (windowBits 12) reads every compressed qpl page', () => {
  const payload = encodePayload(getCodec('qpl'), pages, PAGE);
  let compressed = 0;
  pageEntries(payload, pages.length).forEach((entry, i) => {
    if (entry.byteLength === PAGE) return assert.equal(entry, pages[i]);
    compressed++;
    assert.equal(new Uint8Array(nodeZlib.inflateRawSync(entry, { windowBits: 12 })), pages[i]);
  });
  assert.ok(compressed > 0, 'no page was compressed');
});

zlib('we decode qpl payloads built from node:zlib deflateRaw (windowBits 12) pages and raw pages', () => {
  const entries = pages.map((page, i) => (i % 5 === 0 ? page : new Uint8Array(nodeZlib.deflateRawSync(page, { windowBits: 12, level: 1 }))));
  const usable = entries.map((e, i) => (e.byteLength < PAGE ? e : pages[i]!));
  assert.equal(decodeWith('qpl', pagePayload(usable)), data);
});

zlib('node:zlib inflates every compressed uadk page, each starting 78 9c', () => {
  // The software encoder: without a UADK device the codec itself sends every page raw.
  const payload = encodePayload(softwareUadk, pages, PAGE);
  let compressed = 0;
  pageEntries(payload, pages.length).forEach((entry, i) => {
    if (entry.byteLength === PAGE) return assert.equal(entry, pages[i]);
    compressed++;
    assert.equal([entry[0], entry[1]], [0x78, 0x9c]);
    assert.equal(new Uint8Array(nodeZlib.inflateSync(entry)), pages[i]);
  });
  assert.ok(compressed > 0, 'no page was compressed');
});

zlib('we decode uadk payloads built from node:zlib deflate pages', () => {
  const entries = pages.map((page) => new Uint8Array(nodeZlib.deflateSync(page, { level: 6 })));
  const usable = entries.map((e, i) => (e.byteLength < PAGE ? e : pages[i]!));
  assert.equal(decodeWith('uadk', pagePayload(usable)), data);
});

zlib('node:zlib gunzips our qatzip payloads: 64 KiB gzip members carrying the QZ extra field', () => {
  const payload = encodePayload(getCodec('qatzip'), pages, PAGE);
  assert.equal(new Uint8Array(nodeZlib.gunzipSync(payload)), data);
  // Walk the members by their QZ sizes: 8 members of 64 KiB for a 512 KiB packet.
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 0;
  let members = 0;
  while (at < payload.byteLength) {
    assert.equal([...payload.subarray(at, at + 4)], [0x1f, 0x8b, 0x08, 0x04]);
    assert.is(view.getUint16(at + 10, true), 12);
    assert.equal([payload[at + 12], payload[at + 13]], [0x51, 0x5a]);
    assert.is(view.getUint32(at + 16, true), 65536);
    at += 24 + view.getUint32(at + 20, true) + 8;
    members++;
  }
  assert.is(at, payload.byteLength);
  assert.is(members, 8);
});

zlib('we decode node:zlib gzip output, one member or several concatenated', () => {
  assert.equal(decodeWith('qatzip', nodeZlib.gzipSync(data, { level: 1 })), data);
  const chunks = [0, 1, 2, 3].map((i) => new Uint8Array(nodeZlib.gzipSync(data.subarray(i * 131072, (i + 1) * 131072))));
  assert.equal(decodeWith('qatzip', concatPages(chunks)), data);
});

zlib.run();

/** Runs a Debian command-line tool on `input`, or reports it missing. */
function tool(name: string, args: string[], input: Uint8Array): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-oracle-'));
  try {
    writeFileSync(join(dir, 'in'), input);
    const result = spawnSync(name, [...args, '-q', '-c', join(dir, 'in')], { maxBuffer: 64 << 20 });
    if (result.status !== 0) throw new Error(`${name} ${args.join(' ')} failed: ${result.stderr}`);
    return new Uint8Array(result.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function installed(name: string): boolean {
  return spawnSync(name, ['--version']).status === 0;
}

for (const [id, cli] of [
  ['zstd', 'zstd'],
  ['lz4', 'lz4'],
] as const) {
  const cliSuite = suite(`oracle: Debian ${cli} tool`);
  const present = installed(cli);
  if (!present) console.log(`  skipped: ${cli} is not installed (apt-get install ${cli}); .ci/run installs it`);
  const test = present ? cliSuite : cliSuite.skip;

  test(`${cli} -d decodes our ${id} frames at several levels`, () => {
    for (const level of id === 'zstd' ? [-7, 1, 3, 19] : [1, 8, 1000]) {
      assert.equal(tool(cli, ['-d'], encodePayload(getCodec(id), pages, PAGE, level)), data, `level ${level}`);
    }
  });

  test(`we decode ${cli}'s own frames`, () => {
    for (const level of ['-1', '-3', '-9']) assert.equal(decodeWith(id, tool(cli, [level], data)), data, `${cli} ${level}`);
  });

  cliSuite.run();
}

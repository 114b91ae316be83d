// The hardware codecs on the real path: pool worker → native shim (dlopen, N-API) → fake vendor
// library, for each accelerator: library absent, symbol missing, no device (prefer and
// require), busy queues or failed requests, device decode failures retried in software, and
// whole migrations over 127.0.0.1 with the device on both ends. Skipped, with the reason, where
// the shim is not built (npm run build:native) or gcc and zlib1g-dev are missing.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../src/codecs/registry.js';
import { softwareQatzip } from '../../src/codecs/qatzip.js';
import { softwareQpl } from '../../src/codecs/qpl.js';
import { softwareUadk } from '../../src/codecs/uadk.js';
import type { Codec, HardwarePolicy } from '../../src/codecs/types.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import type { ReceiveOptions } from '../../src/migration/receiver.js';
import { migrate, type MigrateOptions } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { probeHardware, type HardwareVendor } from '../../src/native/addon.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { PacketReader, runsPageCount, type ParsedPacket } from '../../src/wire/index.js';
import { DEVICE_KNOB, fakeLibrary, hardwareSkipReason, VENDORS, withKnobs, zlibDecode } from '../helpers/hardware.js';
import { filledMemory, sameContent } from '../helpers/migration.js';
import { packetBytes, receivePackets } from '../helpers/pool-tasks.js';
import { concatPages } from '../helpers/pages.js';
import { failure, type CodedError } from '../helpers/support.js';

const PAGE = 4096;
const PAGES = 512;
const SOFTWARE: Record<HardwareVendor, Codec> = { qatzip: softwareQatzip, qpl: softwareQpl, uadk: softwareUadk };
/** A function each fake exports and the shim needs. */
const NEEDED_SYMBOL: Record<HardwareVendor, string> = { qatzip: 'qzMaxCompressedLength', qpl: 'qpl_wait_job', uadk: 'wd_do_comp_sync' };
/** The fake's words for "no device" in the probe's reason. */
const NO_DEVICE: Record<HardwareVendor, string> = { qatzip: 'no QAT device', qpl: 'no IAA device', uadk: 'no UADK device' };

const test = suite('hardware codecs on pool workers through the native shim');
const reason = hardwareSkipReason();
if (reason) console.log(`  skipped: ${reason}`);
const register = reason ? test.skip : test;
let pool: WorkerPool;

test.before(() => {
  if (!reason) pool = new WorkerPool({ threads: 2 });
});

test.after(async () => {
  await pool?.close();
});

const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: PAGES * PAGE }] });

/** Sends the whole block through a pool send task and parses its packets back. */
async function send(vendor: HardwareVendor, library: string, hardware: HardwarePolicy = 'prefer') {
  const result = await pool.send({
    memory: source.blocks[0]!.memory,
    byteOffset: 0,
    blockIndex: 0,
    firstPage: 0,
    pageCount: PAGES,
    round: 1,
    sequenceBase: 0,
    codecWireId: getCodec(vendor).info.wireId,
    accelerator: { policy: hardware, library },
    pageSize: PAGE,
    pagesPerPacket: 128,
    zeroPageDetection: 'multifd',
    hashChunks: false,
    stable: true,
  });
  const reader = new PacketReader({ channel: 0, pageSize: PAGE, pagesPerPacket: 128, blocks: [{ pageCount: PAGES }] });
  const packets: ParsedPacket[] = [];
  for (const packet of result.packets) {
    reader.push(packetBytes(packet));
    for (let p = reader.next(); p; p = reader.next()) packets.push(p);
  }
  reader.end();
  return { ...result, packets };
}

/** The normal pages of a packet, from the source. */
function normalPagesOf(packet: ParsedPacket): Uint8Array {
  const bytes = source.blocks[0]!.bytes();
  return concatPages(packet.header.normalRuns.map((r) => bytes.subarray(r.first * PAGE, (r.first + r.count) * PAGE)));
}

/** Checks every packet's payload against the WASM codec and node:zlib. */
function assertDecodesInSoftware(vendor: HardwareVendor, packets: ParsedPacket[]): void {
  for (const packet of packets) {
    const count = runsPageCount(packet.header.normalRuns);
    if (count === 0) continue;
    const payload = packet.bytes.subarray(packet.payloadOffset);
    const pages = Array.from({ length: count }, () => new Uint8Array(PAGE));
    SOFTWARE[vendor].createDecoder({ pageSize: PAGE, maxPages: 128 }).decode(payload, pages);
    assert.equal(concatPages(pages), normalPagesOf(packet), 'WASM decode');
    assert.equal(zlibDecode(vendor, payload, count, PAGE), normalPagesOf(packet), 'node:zlib decode');
  }
}

/** QEMU's UADK sender without a device: every normal page raw, length = page size. */
function assertRawPages(packets: ParsedPacket[]): void {
  for (const packet of packets) {
    const view = new DataView(packet.bytes.buffer, packet.bytes.byteOffset + packet.payloadOffset);
    for (let i = 0; i < runsPageCount(packet.header.normalRuns); i++) assert.is(view.getUint32(4 * i), PAGE);
  }
}

/** Applies packets through pool receive tasks and checks the destination equals the source. */
async function receive(vendor: HardwareVendor, library: string, packets: ParsedPacket[]): Promise<void> {
  const destination = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: PAGES * PAGE }] });
  const setting = { codecWireId: getCodec(vendor).info.wireId, accelerator: { policy: 'prefer' as const, library }, pageSize: PAGE, pagesPerPacket: 128 };
  await receivePackets(pool, packets, destination.blocks[0]!.memory, PAGES, setting);
  assert.ok(sameContent(destination, source), `${vendor}: destination differs`);
}

for (const vendor of VENDORS) {
  const device = { [DEVICE_KNOB[vendor]]: '1' };
  const noDevice = { [DEVICE_KNOB[vendor]]: '0' };

  register(`${vendor}: an absent library leaves the software path (uadk: raw pages), and requiring hardware fails naming the file`, async () => {
    const library = `/nonexistent/${vendor}/lib.so`;
    assert.match(probeHardware(vendor, library).reason, `cannot load ${library}`);
    const sent = await send(vendor, library);
    assert.is(sent.hardwarePages, 0);
    assertDecodesInSoftware(vendor, sent.packets);
    if (vendor === 'uadk') assertRawPages(sent.packets);
    await receive(vendor, library, sent.packets);
    const error = await failure(() => send(vendor, library, 'require'), 'ERR_CODEC_HW_UNAVAILABLE');
    assert.match(error.message, library);
  });

  register(`${vendor}: a library without ${NEEDED_SYMBOL[vendor]} is reported and not used`, async () => {
    const library = fakeLibrary(vendor, 'no-symbol', NEEDED_SYMBOL[vendor]);
    const sent = await withKnobs(device, () => send(vendor, library));
    assert.match(probeHardware(vendor, library).reason, `symbol ${NEEDED_SYMBOL[vendor]} missing`);
    assert.is(sent.hardwarePages, 0);
    assertDecodesInSoftware(vendor, sent.packets);
    if (vendor === 'uadk') assertRawPages(sent.packets);
  });

  register(`${vendor}: without a device the packets still decode with the WASM codec and node:zlib`, async () => {
    const library = fakeLibrary(vendor, 'no-device');
    const sent = await withKnobs(noDevice, () => send(vendor, library));
    assert.is(sent.hardwarePages, 0);
    assert.ok(sent.normalPages > 0);
    assertDecodesInSoftware(vendor, sent.packets);
    if (vendor === 'uadk') assertRawPages(sent.packets);
    await receive(vendor, library, sent.packets);
  });

  register(`${vendor}: without a device, requiring hardware fails with ERR_CODEC_HW_UNAVAILABLE and the reason`, async () => {
    const library = fakeLibrary(vendor, 'no-device');
    const error = await withKnobs(noDevice, () => failure(() => send(vendor, library, 'require'), 'ERR_CODEC_HW_UNAVAILABLE'));
    assert.match(error.message, `${vendor}: hardware required but unavailable`);
    assert.match(error.message, NO_DEVICE[vendor]);
  });

  register(`${vendor}: with a device every normal page goes through it, and the receiver decodes it on its device`, async () => {
    const library = fakeLibrary(vendor, 'device');
    const sent = await withKnobs(device, () => send(vendor, library, 'require'));
    assert.is(sent.hardwarePages, sent.normalPages);
    assertDecodesInSoftware(vendor, sent.packets);
    await withKnobs(device, () => receive(vendor, library, sent.packets));
  });
}

register('qpl: pages whose submission finds the queues busy after 3 retries are compressed in software', async () => {
  const library = fakeLibrary('qpl', 'busy');
  // 4 tries per page: the first two pages give up, the third gets in on its first retry.
  const sent = await withKnobs({ FAKE_QPL_HW: '1', FAKE_QPL_BUSY: '9' }, () => send('qpl', library));
  assert.is(sent.hardwarePages, sent.normalPages - 2);
  assertDecodesInSoftware('qpl', sent.packets);
});

register('uadk: a page the device fails (request status) is compressed in software, the others are not', async () => {
  const library = fakeLibrary('uadk', 'fail-at');
  const sent = await withKnobs({ FAKE_UADK_HW: '1', FAKE_UADK_FAIL_AT: '3' }, () => send('uadk', library));
  assert.is(sent.hardwarePages, sent.normalPages - 1);
  assertDecodesInSoftware('uadk', sent.packets);
});

register('qatzip: a packet the device fails (QZ_FAIL) is compressed in software, the others are not', async () => {
  const library = fakeLibrary('qatzip', 'fail-at');
  const sent = await withKnobs({ FAKE_QZ_HW: '1', FAKE_QZ_FAIL_AT: '1' }, () => send('qatzip', library));
  const firstPacket = sent.packets.find((p) => p.header.normalRuns.length > 0)!;
  assert.is(sent.hardwarePages, sent.normalPages - runsPageCount(firstPacket.header.normalRuns));
  assertDecodesInSoftware('qatzip', sent.packets);
});

const DECODE_FAILURE: Record<HardwareVendor, Record<string, string>> = {
  qatzip: { FAKE_QZ_DECOMP_FAIL: '1' },
  qpl: { FAKE_QPL_HWFAIL: '217' },
  uadk: { FAKE_UADK_STATUS: '64' },
};
for (const vendor of VENDORS) {
  register(`${vendor}: packets the device fails to decode (${Object.entries(DECODE_FAILURE[vendor]).flat().join('=')}) are decoded in software`, async () => {
    const library = fakeLibrary(vendor, 'decode-failure');
    const device = { [DEVICE_KNOB[vendor]]: '1' };
    const sent = await withKnobs(device, () => send(vendor, library));
    assert.is(sent.hardwarePages, sent.normalPages);
    await withKnobs({ ...device, ...DECODE_FAILURE[vendor] }, () => receive(vendor, library, sent.packets));
  });
}

const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }] });

/** One migration over 127.0.0.1 through the test pool, the receiver with its own hardware options. */
async function migrateWith(codec: HardwareVendor, sender: Partial<MigrateOptions>, receiverHardware: Pick<ReceiveOptions, 'accelerator'>) {
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool, ...receiverHardware });
  const [sent, received] = await Promise.allSettled([
    migrate({ source: guestMemorySource(memory), connect: () => connect(parseEndpoint(receiver.address)), codec, channels: 2, pool, ...sender }),
    receiver.result,
  ]);
  return { sent, received, destination: () => destination };
}

for (const vendor of VENDORS) {
  register(`${vendor}: a migration over 127.0.0.1 with the device on both ends arrives with the same checksum`, async () => {
    const hardware = { accelerator: { policy: 'require', library: fakeLibrary(vendor, 'migration') } } as const;
    const run = await withKnobs({ [DEVICE_KNOB[vendor]]: '1' }, () => migrateWith(vendor, hardware, hardware));
    if (run.sent.status === 'rejected') throw run.sent.reason;
    if (run.received.status === 'rejected') throw run.received.reason;
    const stats = run.sent.value;
    assert.is(stats.status, 'completed');
    assert.is(stats['destination-checksum'], stats['source-checksum']);
    assert.ok(sameContent(run.destination()!, memory));
    assert.ok(stats.normal > 0);
    assert.is(stats['hardware-pages'], stats.normal);
    assert.is(stats['software-pages'], 0);
    // QATzip leaves payloads under 1024 bytes (all-zero-like packets) to its software path.
    if (vendor !== 'qatzip') assert.is(run.received.value.hardwarePages, stats.normal);
    else assert.ok(run.received.value.hardwarePages > 0);
  });
}

register('a receiver that requires hardware fails the migration when it has no device', async () => {
  const library = fakeLibrary('qpl', 'receiver-without-device');
  const run = await withKnobs({ FAKE_QPL_HW: '0' }, () => migrateWith('qpl', {}, { accelerator: { policy: 'require', library } }));
  assert.is(run.received.status, 'rejected');
  const error = (run.received as PromiseRejectedResult).reason as CodedError;
  assert.is(error.code, 'ERR_CODEC_HW_UNAVAILABLE');
  assert.match(error.message, 'no IAA device');
});

test.run();

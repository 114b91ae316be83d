import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { ProtocolError } from '../../../src/errors.js';
import { QEMU_FLAG_SYNC, type QemuPacketHeader } from '../../../src/qemu/multifd-format.js';
import { QEMU_MAX_MAIN_HEAD_BYTES, RamBlockTableReader, checkPacketAgainstBlocks, type RamBlockTable } from '../../../src/qemu/ram-blocks.js';
import { PC_MACHINE, mainStreamHead, type MainStreamBlock, type MainStreamHeadOptions } from './main-stream.js';

const test = suite('QEMU RAM block table');
const PAGE = 4096;

/**
 * The first 183 bytes QEMU 7.2.22 (Debian 12) sent for `-machine pc -m 64 -nodefaults`,
 * captured with `migrate "exec:cat > FILE"`: QEVM 3, the configuration section (no
 * subsections), "ram" section 2 and its MEM_SIZE record with six blocks.
 */
const REAL_72_HEAD = Buffer.from(
  '5145564d00000003070000000d70632d6934343066782d372e3201000000020372616d000000000000000400000000040820040670632e72616d000000000400' +
    '0000142f726f6d406574632f616370692f7461626c657300000000000200000770632e62696f7300000000000400000670632e726f6d0000000000020000152f' +
    '726f6d406574632f7461626c652d6c6f616465720000000000001000122f726f6d406574632f616370692f727364700000000000001000',
  'hex',
);
/** What 7.2 sent next: the EOS flag as a be64 and the section footer 0x7E, section 2. */
const REAL_72_AFTER = Buffer.from('00000000000000107e00000002', 'hex');

const PC_BLOCKS: MainStreamBlock[] = [
  { name: 'pc.ram', bytes: 64 * 2 ** 20 },
  { name: '/rom@etc/acpi/tables', bytes: 128 * 1024 },
  { name: 'pc.bios', bytes: 256 * 1024 },
  { name: 'pc.rom', bytes: 128 * 1024 },
  { name: '/rom@etc/table-loader', bytes: 4096 },
  { name: '/rom@etc/acpi/rsdp', bytes: 4096 },
];
const PC_TABLE: RamBlockTable = new Map(PC_BLOCKS.map((block) => [block.name, block.bytes]));

/** Feeds `bytes` to a new reader in chunks of `chunkBytes` (all at once by default). */
function read(bytes: Uint8Array, chunkBytes = bytes.byteLength): RamBlockTableReader {
  const reader = new RamBlockTableReader({ pageSize: PAGE });
  for (let at = 0; at < bytes.byteLength; at += chunkBytes) reader.push(bytes.subarray(at, at + chunkBytes));
  return reader;
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** Asserts `fn` throws a ProtocolError with `code` whose field contains `part` and whose expected and got are the given ones. */
function refuses(fn: () => unknown, code: string, part: string, expected: string | number | RegExp, got: string | number): ProtocolError {
  let error = undefined as unknown as ProtocolError;
  const isIt = (thrown: unknown) => thrown instanceof ProtocolError && (error = thrown).code === code;
  assert.throws(fn, isIt, `expected a ProtocolError ${code}`);
  assert.ok(String(error.context.field).includes(part), `field "${String(error.context.field)}" names ${part}`);
  if (expected instanceof RegExp) assert.match(String(error.context.expected), expected);
  else assert.is(error.context.expected, expected);
  assert.is(error.context.got, got);
  assert.ok(error.message.startsWith('QEMU multifd'), error.message);
  return error;
}

/** Asserts the head is refused the same way whether it comes at once or a byte at a time. */
function refusesHead(head: Uint8Array, part: string, expected: string | number | RegExp, got: string | number): ProtocolError {
  refuses(() => read(head, 1), 'ERR_QEMU_MAIN', part, expected, got);
  return refuses(() => read(head), 'ERR_QEMU_MAIN', part, expected, got);
}

const head = (options: MainStreamHeadOptions = {}, blocks = PC_BLOCKS) => mainStreamHead(blocks, options);

/** `bytes` with the first occurrence of `find` (a UTF-8 string) overwritten by `replacement`. */
function patched(bytes: Uint8Array, find: string, replacement: Uint8Array): Uint8Array {
  const at = Buffer.from(bytes).indexOf(find);
  assert.ok(at >= 0, `${find} in the head`);
  const copy = bytes.slice();
  copy.set(replacement, at);
  return copy;
}

test('the builder writes the head QEMU 7.2 sent, byte for byte', () => {
  assert.equal(head(), new Uint8Array(REAL_72_HEAD));
});

test("the real 7.2 head gives pc's six blocks fed 1 byte, 7 bytes or all at once, and what follows is ignored", () => {
  const stream = concat(REAL_72_HEAD, REAL_72_AFTER, new Uint8Array(5000).fill(0xee));
  for (const chunkBytes of [1, 7, stream.byteLength]) {
    const reader = read(stream, chunkBytes);
    assert.equal([...reader.table!], [...PC_TABLE], `chunks of ${chunkBytes}`);
    assert.is(reader.headBytes, 183);
    assert.equal(reader.configuration, { machine: PC_MACHINE });
    assert.is(reader.bufferedBytes, 0);
    reader.end();
  }
});

test('the table is unknown until the last block is in, one byte short', () => {
  const reader = read(REAL_72_HEAD.subarray(0, 182), 1);
  assert.is(reader.table, undefined);
  assert.is(reader.bufferedBytes, 25); // the last block's idstr and 7 bytes of its used_length, in the reader's scratch
  reader.push(REAL_72_HEAD.subarray(182));
  assert.is(reader.table!.get('/rom@etc/acpi/rsdp'), 4096);
});

test('a head without a configuration section, or with every subsection and a return path, gives the same table', () => {
  const uuid = Uint8Array.from({ length: 16 }, (_, i) => 0x12 + i);
  const cases: Array<[MainStreamHeadOptions, object | undefined]> = [
    [{ machine: null }, undefined],
    [{ targetPageBits: 12, uuid, returnPath: true }, { machine: PC_MACHINE, targetPageBits: 12, uuid }],
    [{ machine: 'pc-q35-7.2', capabilities: [] }, { machine: 'pc-q35-7.2' }],
  ];
  for (const [options, configuration] of cases) {
    for (const chunkBytes of [1, 7, 4096]) {
      const reader = read(concat(head(options), REAL_72_AFTER), chunkBytes);
      assert.equal([...reader.table!], [...PC_TABLE], JSON.stringify(options));
      assert.equal(reader.configuration, configuration);
    }
  }
});

test('a total that ends at a block boundary ends the table there, as the destination QEMU reads it', () => {
  const sum = PC_BLOCKS.reduce((total, block) => total + block.bytes, 0);
  const reader = read(head({ totalBytes: sum - 2 * PAGE }), 1);
  assert.equal([...reader.table!.keys()], ['pc.ram', '/rom@etc/acpi/tables', 'pc.bios', 'pc.rom']);
  assert.is(reader.headBytes, 183 - 30 - 27); // without the last two blocks' records
});

test('a MEM_SIZE record of total 0 gives an empty table', () => {
  const reader = read(concat(mainStreamHead([], { machine: 'none' }), REAL_72_AFTER));
  assert.is(reader.table!.size, 0);
});

test('chunks after the table are not looked at, and the same chunk may be pushed again', () => {
  const reader = read(REAL_72_HEAD);
  const table = reader.table;
  const junk = new Uint8Array(1 << 20).fill(0xff);
  for (let i = 0; i < 100; i++) reader.push(junk);
  assert.is(reader.table, table);
  assert.is(reader.bufferedBytes, 0);
});

test('refuses another magic or version', () => {
  refusesHead(patched(head(), 'QEVM', Buffer.from('QEVN')), 'magic', '0x5145564D (QEVM)', '0x5145564E');
  const multifd = Uint8Array.of(0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1);
  refusesHead(multifd, 'magic', '0x5145564D (QEVM)', '0x11223344');
  const v2 = head().slice();
  v2[7] = 2;
  refusesHead(v2, 'version', 3, 2);
});

test('refuses an unknown configuration subsection, another subsection version, another page size, a listed capability', () => {
  refusesHead(patched(head({ uuid: new Uint8Array(16) }), 'configuration/uuid', Buffer.from('configuration/uuix')), 'configuration subsection', /target-page-bits/, '"configuration/uuix"');
  const v2 = head({ targetPageBits: 12 });
  const at = Buffer.from(v2).indexOf('target-page-bits') + 'target-page-bits'.length;
  v2[at + 3] = 2;
  refusesHead(v2, 'configuration/target-page-bits version', 1, 2);
  refusesHead(head({ targetPageBits: 16 }), 'target-page-bits', '12 (page size 4096)', 16);
  const error = refusesHead(head({ capabilities: ['x-ignore-shared'] }), 'configuration/capabilities', /x-ignore-shared/, 'x-ignore-shared');
  assert.match(error.message, /byte 63: configuration\/capabilities/);
});

test('refuses a machine name that is empty, too long or not UTF-8', () => {
  refusesHead(head({ machine: '' }), 'configuration name length', '1 to 256', 0);
  refusesHead(head({ machine: 'm'.repeat(257) }), 'configuration name length', '1 to 256', 257);
  refusesHead(patched(head(), 'pc-i440fx', Uint8Array.of(0xc3, 0x28)), 'configuration name', 'a UTF-8 name without NUL', 'bytes 0xC3 0x28 0x2D 0x69 0x34 0x34 0x30 0x66 0x78 0x2D 0x37 0x2E 0x32');
});

test('refuses commands other than the return path and ping: postcopy, by name', () => {
  const advise = patched(head({ returnPath: true }), '\x08\x00\x02\x00\x04', Uint8Array.of(0x08, 0x00, 0x03, 0x00, 0x04));
  refusesHead(advise, 'command', 'OPEN_RETURN_PATH or PING before the RAM section (postcopy adds page sizes to the RAM block list)', 'POSTCOPY_ADVISE');
  const longPing = patched(head({ returnPath: true }), '\x08\x00\x02\x00\x04', Uint8Array.of(0x08, 0x00, 0x02, 0x00, 0x08));
  refusesHead(longPing, 'PING length', 4, 8);
});

test('refuses a first section other than "ram" version 4, and a section type the head cannot have', () => {
  refusesHead(head({ section: { idstr: 'block', version: 1 } }), 'first section', '"ram" instance 0 version 4', '"block" instance 0 version 1');
  refusesHead(head({ section: { idstr: 'ram', version: 3 } }), 'first section', '"ram" instance 0 version 4', '"ram" instance 0 version 3');
  const full = head().slice();
  full[8] = 0x04; // SECTION_FULL where the configuration section was
  refusesHead(full, 'section type', '0x07 (CONFIGURATION) or 0x08 (COMMAND) or 0x01 (SECTION_START) of "ram"', '0x04');
  const twice = concat(head().subarray(0, 26), Uint8Array.of(0x07));
  refusesHead(twice, 'byte 26: section type', '0x05 (SUBSECTION) or 0x08 (COMMAND) or 0x01 (SECTION_START) of "ram"', '0x07');
});

test('refuses a ram section that does not open with a MEM_SIZE record', () => {
  const sum = PC_BLOCKS.reduce((total, block) => total + block.bytes, 0);
  refusesHead(head({ totalBytes: sum + 0x10 }), 'ram record flags', '0x04 (MEM_SIZE, the RAM block list)', '0x14');
  refusesHead(head({ totalBytes: sum + 0x800 }), 'ram record flags', '0x04 (MEM_SIZE, the RAM block list)', '0x804');
});

test('refuses block lengths that do not sum to the total', () => {
  const blocks = [{ name: 'pc.ram', bytes: 64 * 2 ** 20 }, { name: 'pc.bios', bytes: 2 * PAGE }];
  // A total one page short: the last block is past what is left.
  refusesHead(head({ totalBytes: 64 * 2 ** 20 + PAGE }, blocks), 'RAM block "pc.bios" used_length', 'at most 0x1000 (MEM_SIZE total less the blocks before)', '0x2000');
  const sum = PC_BLOCKS.reduce((total, block) => total + block.bytes, 0);
  // A total one page over: the EOS after the last block is read as a block with an empty name.
  refusesHead(concat(head({ totalBytes: sum + PAGE }), REAL_72_AFTER), 'RAM block idstr length', '1 to 255', 0);
});

test('refuses a used_length that is not whole pages or zero, a name twice, a name not UTF-8', () => {
  const odd = [{ name: 'pc.ram', bytes: 64 * 2 ** 20 + 512 }];
  refusesHead(head({ totalBytes: 64 * 2 ** 20 + PAGE }, odd), 'RAM block "pc.ram" used_length', 'a non-zero multiple of 4096', '0x4000200');
  refusesHead(head({ totalBytes: PAGE }, [{ name: 'pc.ram', bytes: 0 }]), 'RAM block "pc.ram" used_length', 'a non-zero multiple of 4096', '0x0');
  const twice = [{ name: 'pc.ram', bytes: PAGE }, { name: 'pc.ram', bytes: PAGE }];
  refusesHead(head({}, twice), 'RAM block idstr', 'a name not listed before', '"pc.ram"');
  refusesHead(patched(head(), 'pc.bios', Uint8Array.of(0xff)), 'RAM block idstr', 'a UTF-8 name without NUL', 'bytes 0xFF 0x63 0x2E 0x62 0x69 0x6F 0x73');
});

test('refuses a head past 64 KiB', () => {
  const blocks = Array.from({ length: 300 }, (_, i) => ({ name: `${i}`.padStart(255, 'b'), bytes: PAGE }));
  const error = refusesHead(head({}, blocks), 'head', `the RAM block table within ${QEMU_MAX_MAIN_HEAD_BYTES} bytes`, '65787 bytes and more');
  assert.match(error.message, /byte 65524: head/);
});

test('a channel that closes before the table is truncated, and a refused reader keeps refusing', () => {
  const short = read(REAL_72_HEAD.subarray(0, 100), 3);
  refuses(() => short.end(), 'ERR_QEMU_TRUNCATED', 'byte 96: RAM block idstr and used_length', '15 bytes', '4 bytes before the end');
  refuses(() => read(new Uint8Array(0)).end(), 'ERR_QEMU_TRUNCATED', 'byte 0: magic and version', '8 bytes', '0 bytes before the end');
  const broken = new RamBlockTableReader({ pageSize: PAGE });
  const first = refuses(() => broken.push(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)), 'ERR_QEMU_MAIN', 'magic', '0x5145564D (QEVM)', '0x01020304');
  assert.throws(() => broken.push(REAL_72_HEAD), (error: unknown) => error === first);
  assert.throws(() => broken.end(), (error: unknown) => error === first);
});

/** A packet header with defaults: one normal page of "pc.ram". */
function packet(fields: Partial<QemuPacketHeader>): QemuPacketHeader {
  return { flags: 0, sync: false, pagesAlloc: 128, normalPages: 1, zeroPages: 0, nextPacketSize: PAGE, packetNum: 1n, ramBlock: 'pc.ram', normalOffsets: [0], zeroOffsets: [], ...fields };
}

const AT = { channel: 1, packet: 9 };
const check = (header: QemuPacketHeader) => checkPacketAgainstBlocks(header, PC_TABLE, PAGE, AT);

test('a packet naming a block the source did not list is refused', () => {
  const error = refuses(() => check(packet({ ramBlock: 'pc.ramx' })), 'ERR_QEMU_RAMBLOCK', 'ramblock', /^a RAM block of the source \("pc.ram", /, '"pc.ramx"');
  assert.is(error.context.channel, 1);
  assert.match(error.message, /^QEMU multifd channel 1, packet 9: ramblock:/);
  refuses(() => check(packet({ normalPages: 0, zeroPages: 1, normalOffsets: [], zeroOffsets: [0], ramBlock: 'vga.vram' })), 'ERR_QEMU_RAMBLOCK', 'ramblock', /pc.bios/, '"vga.vram"');
});

test("a packet's last page may end at its block's end, one page further is refused with the offset's index", () => {
  const last = 64 * 2 ** 20 - PAGE;
  check(packet({ normalPages: 2, nextPacketSize: 2 * PAGE, normalOffsets: [0, last] }));
  check(packet({ ramBlock: '/rom@etc/acpi/rsdp', normalOffsets: [], normalPages: 0, nextPacketSize: 0, zeroPages: 1, zeroOffsets: [0] }));
  const past = packet({ normalPages: 3, nextPacketSize: 3 * PAGE, normalOffsets: [0, last, last + PAGE] });
  const error = refuses(() => check(past), 'ERR_QEMU_OFFSET', 'offset[2]', 'at most 0x3FFF000 (block "pc.ram" has 67108864 bytes)', '0x4000000');
  assert.is(error.context.packet, 9);
  const zeroPast = packet({ ramBlock: 'pc.rom', normalOffsets: [0x1000], zeroPages: 2, zeroOffsets: [0x1f000, 0x20000] });
  refuses(() => checkPacketAgainstBlocks(zeroPast, PC_TABLE, PAGE), 'ERR_QEMU_OFFSET', 'offset[2]', 'at most 0x1F000 (block "pc.rom" has 131072 bytes)', '0x20000');
});

test('a packet without pages is accepted whatever block it names: empty, SYNC-only, stale', () => {
  for (const ramBlock of ['', 'pc.ram', 'a block long gone']) {
    check(packet({ ramBlock, normalPages: 0, normalOffsets: [], nextPacketSize: PAGE }));
    check(packet({ ramBlock, flags: QEMU_FLAG_SYNC, sync: true, pagesAlloc: 0, normalPages: 0, normalOffsets: [], nextPacketSize: 0 }));
  }
  checkPacketAgainstBlocks(packet({ ramBlock: 'x', normalPages: 0, normalOffsets: [] }), new Map(), PAGE);
});

test('an unknown block in an empty table says none was listed', () => {
  refuses(() => checkPacketAgainstBlocks(packet({}), new Map(), PAGE, AT), 'ERR_QEMU_RAMBLOCK', 'ramblock', 'a RAM block of the source (none listed)', '"pc.ram"');
});

test.run();

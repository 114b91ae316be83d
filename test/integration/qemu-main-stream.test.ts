// The real QEMU 7.2's main stream against RamBlockTableReader: a `-machine pc` QEMU without a
// guest migrates into a file (`exec:cat > FILE`, no multifd: the head up to the block list is
// the same), and the file is fed to the reader. Skipped, with the reason, when
// qemu-system-x86_64 is not installed (npm run setup:qemu).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { QEMU_BINARY, qemuVersion } from '../../benchmarks/qemu.js';
import { QmpClient } from '../../benchmarks/qmp.js';
import { ProtocolError } from '../../src/errors.js';
import { RamBlockTableReader } from '../../src/qemu/ram-blocks.js';
import { useTempDir } from '../helpers/support.js';

const test = suite('QEMU main stream');
const version = qemuVersion();
if (!version) console.log('  skipped: qemu-system-x86_64 is not installed (npm run setup:qemu)');
const register = version ? test : test.skip;
const dir = useTempDir(test, 'qemu-main');
const PAGE = 4096;
const MIB = 2 ** 20;
const UUID = '12345678-9abc-4def-8123-456789abcdef';
/** Only a bound on a wedged QEMU: the migration of 64 MiB of untouched RAM into a file takes a second or two. */
const MIGRATION_TIMEOUT_MS = 60_000;

/** How to start the QEMU that migrates into a file. */
interface FileMigration {
  memoryMib?: number;
  extra?: string[];
  capabilities?: string[];
}

/**
 * Starts a paused `-machine pc` QEMU (64 MiB by default), turns on `capabilities`, migrates
 * its state into `name` in the temp dir and returns the file's bytes. QEMU is made to quit,
 * and killed if it has not exited 5 s later, whatever happens.
 */
async function migrateToFile(name: string, { memoryMib = 64, extra = [], capabilities = [] }: FileMigration = {}): Promise<Uint8Array> {
  const file = dir.path(`${name}.bin`);
  const socket = dir.path(`${name}.sock`);
  const args = ['-machine', 'pc', '-m', `${memoryMib}`, '-accel', 'tcg', '-nodefaults', '-display', 'none', '-S', '-qmp', `unix:${socket},server=on,wait=off`, ...extra];
  const child = spawn(QEMU_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  let qmp: QmpClient | undefined;
  try {
    qmp = await QmpClient.open(socket, `QEMU ${name}`);
    if (capabilities.length > 0) {
      await qmp.execute('migrate-set-capabilities', { capabilities: capabilities.map((capability) => ({ capability, state: true })) });
    }
    await qmp.execute('migrate', { uri: `exec:cat > ${file}` });
    const deadline = performance.now() + MIGRATION_TIMEOUT_MS;
    for (;;) {
      const info = (await qmp.execute('query-migrate')) as { status: string; 'error-desc'?: string };
      if (info.status === 'completed') break;
      if (info.status === 'failed' || performance.now() > deadline) assert.unreachable(`migration ${info.status}: ${info['error-desc'] ?? ''} ${stderr}`);
      await sleep(50);
    }
    return new Uint8Array(readFileSync(file));
  } finally {
    await qmp?.execute('quit').catch(() => undefined);
    qmp?.close();
    if (child.exitCode === null && child.signalCode === null) {
      const quit = await Promise.race([exited.then(() => true), sleep(5000, undefined, { ref: false }).then(() => false)]);
      if (!quit) child.kill('SIGKILL');
      await exited;
    }
  }
}

/** Feeds `stream` to a new reader: its first `byByte` bytes one at a time, the rest in 64 KiB chunks. */
function readTable(stream: Uint8Array, byByte = 0): RamBlockTableReader {
  const reader = new RamBlockTableReader({ pageSize: PAGE });
  for (let at = 0; at < byByte; at++) reader.push(stream.subarray(at, at + 1));
  for (let at = byByte; at < stream.byteLength; at += 65536) reader.push(stream.subarray(at, at + 65536));
  reader.end();
  return reader;
}

/** What QEMU 7.2 lists for `-machine pc -m 64 -nodefaults`: RAM, firmware and the ACPI tables fw_cfg exposes. */
const PC_BLOCKS = [
  ['pc.ram', 64 * MIB],
  ['/rom@etc/acpi/tables', 128 * 1024],
  ['pc.bios', 256 * 1024],
  ['pc.rom', 128 * 1024],
  ['/rom@etc/table-loader', 4096],
  ['/rom@etc/acpi/rsdp', 4096],
];

register('the table of a -machine pc QEMU is its RAM blocks with their sizes, fed at once or a byte at a time', async () => {
  const stream = await migrateToFile('pc');
  for (const byByte of [0, 1000]) {
    const reader = readTable(stream, byByte);
    assert.equal([...reader.table!], PC_BLOCKS);
    assert.equal(reader.configuration, { machine: 'pc-i440fx-7.2' });
    assert.is(reader.headBytes, 183);
  }
  // What follows the block list in 7.2: the EOS flag, then the footer of section 2.
  assert.equal([...stream.subarray(183, 196)], [0, 0, 0, 0, 0, 0, 0, 0x10, 0x7e, 0, 0, 0, 2]);
});

register('with -uuid and validate-uuid the configuration carries the uuid, and the table is the same', async () => {
  const stream = await migrateToFile('uuid', { memoryMib: 128, extra: ['-uuid', UUID], capabilities: ['validate-uuid'] });
  const reader = readTable(stream, 300);
  assert.equal(reader.configuration, { machine: 'pc-i440fx-7.2', uuid: new Uint8Array(Buffer.from(UUID.replaceAll('-', ''), 'hex')) });
  assert.equal([...reader.table!], [['pc.ram', 128 * MIB], ...PC_BLOCKS.slice(1)]);
});

register('x-ignore-shared, which adds a field to every block, is refused by name from the configuration', async () => {
  const stream = await migrateToFile('ignore-shared', { capabilities: ['x-ignore-shared'] });
  let refusal: unknown;
  try {
    new RamBlockTableReader({ pageSize: PAGE }).push(stream);
  } catch (error) {
    refusal = error;
  }
  assert.instance(refusal, ProtocolError, 'the head is refused');
  const { code, context } = refusal as ProtocolError;
  assert.is(code, 'ERR_QEMU_MAIN');
  assert.is(context.field, 'main channel byte 63: configuration/capabilities');
  assert.is(context.got, 'x-ignore-shared');
});

test.run();

import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { countDirty } from '../../../src/migration/dirty/dirty-log.js';
import { ExplicitDirtyLog } from '../../../src/migration/dirty/explicit-log.js';
import { startGuest, type Guest, type GuestOptions } from '../../../src/workload/guest.js';
import { concatPages, makePages } from '../../helpers/pages.js';
import { failure } from '../../helpers/support.js';

const test = suite('demo guest');
const PAGE = 4096;

/** Two blocks full of random pages, so a write or a zeroing shows in any page. */
function randomMemory(): GuestMemory {
  const memory = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: 512 * PAGE }, { name: 'pc.ram.1', byteLength: 256 * PAGE }] });
  memory.blocks.forEach((block, i) => block.bytes().set(concatPages(makePages('random', block.pageCount, PAGE, 40 + i))));
  return memory;
}

function copyOf(memory: GuestMemory): Uint8Array[] {
  return memory.blocks.map((block) => block.bytes().slice());
}

/** Pages that differ from `before`, as [block, page] pairs. */
function changedPages(memory: GuestMemory, before: Uint8Array[]): [number, number][] {
  const changed: [number, number][] = [];
  memory.blocks.forEach((block, b) => {
    for (let page = 0; page < block.pageCount; page++) {
      if (Buffer.compare(block.page(page), before[b]!.subarray(page * PAGE, (page + 1) * PAGE)) !== 0) changed.push([b, page]);
    }
  });
  return changed;
}

function sameBytes(memory: GuestMemory, before: Uint8Array[]): boolean {
  return memory.blocks.every((block, b) => Buffer.compare(block.bytes(), before[b]!) === 0);
}

/** Waits until `reached()` holds; the deadline only keeps a broken guest from hanging the run. */
async function eventually(reached: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 20_000; !reached(); await sleep(5)) {
    if (Date.now() > deadline) assert.unreachable(`never: ${what}`);
  }
}

/** Runs `body` with a started guest and always stops it. */
async function withGuest(options: GuestOptions, body: (guest: Guest) => Promise<void>): Promise<void> {
  const guest = await startGuest(options);
  try {
    await body(guest);
  } finally {
    await guest.stop();
  }
}

test('a random writer changes memory, and every page it changed is in its explicit dirty log', async () => {
  const memory = randomMemory();
  const before = copyOf(memory);
  const dirtyLog = new ExplicitDirtyLog(memory);
  await dirtyLog.start();
  await withGuest({ memory, mode: 'random-writer', dirtyLog, seed: 3 }, async (guest) => {
    await eventually(() => guest.pagesWritten >= 400, '400 pages written');
    await guest.pause();
    const dirty = await dirtyLog.sync();
    const changed = changedPages(memory, before);
    assert.ok(changed.length > 0);
    for (const [block, page] of changed) assert.ok((dirty[block]![page >>> 5]! >>> (page & 31)) & 1, `page ${page} of block ${block} changed unmarked`);
    assert.ok(countDirty(dirty) <= guest.pagesWritten);
    // Some pages went from random to all-zero (5 % of writes by default).
    assert.ok(guest.pagesZeroed > 0);
    assert.ok(changed.some(([block, page]) => memory.blocks[block]!.page(page).every((byte) => byte === 0)));
  });
});

test('after pause() resolves nothing is written for 200 ms; resume() writes again', async () => {
  const memory = randomMemory();
  await withGuest({ memory, mode: 'random-writer' }, async (guest) => {
    await eventually(() => guest.pagesWritten > 0, 'a first write');
    await guest.pause();
    const before = copyOf(memory);
    const written = guest.pagesWritten;
    await sleep(200);
    assert.ok(sameBytes(memory, before), 'memory changed while paused');
    assert.is(guest.pagesWritten, written);
    guest.resume();
    await eventually(() => guest.pagesWritten > written, 'a write after resume');
    assert.not.ok(sameBytes(memory, before));
  });
});

test('pausing again right after a resume still waits for the writer to stop', async () => {
  const memory = randomMemory();
  await withGuest({ memory, mode: 'random-writer' }, async (guest) => {
    for (let i = 0; i < 20; i++) {
      await guest.pause();
      const before = copyOf(memory);
      await sleep(15);
      assert.ok(sameBytes(memory, before), `memory changed during pause ${i}`);
      guest.resume();
      await sleep(i % 3);
    }
  });
});

test('a 50 % throttle writes clearly fewer pages per unit of time than no throttle', async () => {
  const memory = randomMemory();
  await withGuest({ memory, mode: 'random-writer', dirtyPagesPerSecond: 5000 }, async (guest) => {
    // Pages per millisecond over one period at the current throttle.
    const rate = async () => {
      await sleep(30); // lets a slice started under the previous setting finish
      const [pages, start] = [guest.pagesWritten, performance.now()];
      await sleep(400);
      return (guest.pagesWritten - pages) / (performance.now() - start);
    };
    await eventually(() => guest.pagesWritten > 0, 'a first write');
    const full = await rate();
    guest.setThrottle(50);
    const throttled = await rate();
    // cpu-throttle at 50 % halves the writing; 0.75 leaves room for a busy machine.
    assert.ok(throttled < 0.75 * full, `throttled ${throttled.toFixed(2)} pages/ms vs ${full.toFixed(2)} unthrottled`);
    assert.ok(throttled > 0, 'a throttled guest still writes');
  });
});

test('an idle guest writes nothing, yet pauses and resumes like a busy one', async () => {
  const memory = randomMemory();
  const before = copyOf(memory);
  await withGuest({ memory, mode: 'idle' }, async (guest) => {
    await sleep(100);
    await guest.pause();
    guest.resume();
    await sleep(50);
    assert.is(guest.pagesWritten, 0);
    assert.ok(sameBytes(memory, before));
  });
});

test('options outside their ranges, and a dirty log of other memory, are refused', async () => {
  const memory = randomMemory();
  const other = new ExplicitDirtyLog(GuestMemory.create({ pageSize: PAGE, byteLength: 8 * PAGE }));
  await failure(() => startGuest({ memory, mode: 'busy' as 'idle' }), 'ERR_OUT_OF_RANGE');
  await failure(() => startGuest({ memory, mode: 'random-writer', dirtyPagesPerSecond: -1 }), 'ERR_OUT_OF_RANGE');
  await failure(() => startGuest({ memory, mode: 'random-writer', zeroFraction: 1.5 }), 'ERR_OUT_OF_RANGE');
  await failure(() => startGuest({ memory, mode: 'random-writer', dirtyLog: other }), 'ERR_OUT_OF_RANGE');
  await withGuest({ memory, mode: 'idle' }, async (guest) => {
    await failure(() => guest.setThrottle(100), 'ERR_OUT_OF_RANGE');
    await failure(() => guest.setThrottle(12.5), 'ERR_OUT_OF_RANGE');
  });
});

test('stop() ends the writer for good, and later calls to the guest are refused', async () => {
  const memory = randomMemory();
  const guest = await startGuest({ memory, mode: 'random-writer' });
  await eventually(() => guest.pagesWritten > 0, 'a first write');
  await guest.stop();
  const before = copyOf(memory);
  const written = guest.pagesWritten;
  await sleep(50);
  assert.ok(sameBytes(memory, before));
  assert.is(guest.pagesWritten, written);
  await guest.stop();
  await failure(() => guest.pause(), 'ERR_GUEST_STOPPED');
  await failure(() => guest.resume(), 'ERR_GUEST_STOPPED');
});

test('a process whose guest was stopped exits on its own: no worker thread is left', async () => {
  // A worker still running would keep the child alive until the kill below.
  const url = (path: string) => JSON.stringify(new URL(path, import.meta.url).href);
  const code = `
    const { GuestMemory } = await import(${url('../../../src/memory/guest-memory.ts')});
    const { startGuest } = await import(${url('../../../src/workload/guest.ts')});
    const guest = await startGuest({ memory: GuestMemory.create({ byteLength: 1 << 20 }), mode: 'random-writer' });
    while (guest.pagesWritten === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    await guest.stop();
    console.log('stopped');`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  const timer = setTimeout(() => child.kill(), 30_000);
  const exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);
  assert.is(stdout.trim(), 'stopped');
  assert.is(exitCode, 0);
});

test.run();

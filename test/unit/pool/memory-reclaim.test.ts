// The pool workers' garbage collection of finished shared memories: due once the memories a
// worker has newly seen add up to RECLAIM_BYTES, never for more tasks on a memory it knows.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MemoryReclaimer, RECLAIM_BYTES, memoryId } from '../../../src/pool/memory-reclaim.js';

const test = suite('memory reclaim');

test('a memory keeps its number; another memory gets another', () => {
  const a = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  const b = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  assert.is(memoryId(a), memoryId(a));
  assert.is.not(memoryId(a), memoryId(b));
});

test('collects once RECLAIM_BYTES of new memories were seen, and not for tasks on known ones', () => {
  let collections = 0;
  const reclaimer = new MemoryReclaimer(() => collections++);
  const quarter = RECLAIM_BYTES / 4;
  for (let task = 0; task < 100; task++) reclaimer.note(1, quarter); // one memory, many tasks
  assert.is(collections, 0);
  for (let id = 2; id <= 4; id++) reclaimer.note(id, quarter);
  assert.is(collections, 1, 'four distinct quarters make one collection');
  for (let id = 5; id <= 12; id++) reclaimer.note(id, quarter);
  assert.is(collections, 3);
});

test('a real collection runs in this thread without --expose-gc on the command line', () => {
  const reclaimer = new MemoryReclaimer();
  reclaimer.note(1, RECLAIM_BYTES);
});

test.run();

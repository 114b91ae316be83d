import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { mergeBitmaps, tasksOfRuns } from '../../../src/migration/round-planning.js';

const test = suite('round planning');

test('a sparse dirty set packs into few tasks, each with at most N dirty pages, runs relative to the task', () => {
  const runs = Array.from({ length: 10 }, (_, i) => ({ first: i * 1000, count: 3 }));
  const tasks = tasksOfRuns(runs, 8);
  assert.equal(tasks.map((t) => t.runs.reduce((n, r) => n + r.count, 0)), [8, 8, 8, 6]);
  assert.equal(tasks[0], { first: 0, pageCount: 2002, runs: [{ first: 0, count: 3 }, { first: 1000, count: 3 }, { first: 2000, count: 2 }] });
  assert.equal(tasks[1]!.first, 2002, 'a run split across tasks continues where the last one stopped');
  const pages = (task: (typeof tasks)[number]) => task.runs.flatMap((r) => Array.from({ length: r.count }, (_, i) => task.first + r.first + i));
  assert.equal(tasks.flatMap(pages), runs.flatMap((r) => [r.first, r.first + 1, r.first + 2]));
});

test('a long run is cut into tasks of exactly N pages', () => {
  const tasks = tasksOfRuns([{ first: 5, count: 2500 }], 1024);
  assert.equal(tasks.map((t) => [t.first, t.pageCount]), [[5, 1024], [1029, 1024], [2053, 452]]);
});

test('merging bitmaps keeps every page dirty in either', () => {
  const merged = mergeBitmaps([new Uint32Array([0b0101, 0])], [new Uint32Array([0b0011, 1 << 31])]);
  assert.equal([...merged[0]!], [0b0111, 2 ** 31]);
});

test.run();

// The fuzz targets in CI: every committed corpus input replays without a crash (fixed crashes
// stay fixed), every seed recorded from a real stream is accepted whole (so the targets test
// what they claim to), arbitrary bytes from fast-check (which shrinks a failure to its smallest
// input) only meet typed errors, and a short coverage-guided run of each target finds nothing.
// Long runs: `npm run fuzz` (docs/security.md).
import fc from 'fast-check';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { readdirSync } from 'node:fs';
import { corpusDir, readCorpus } from './corpus.js';
import { fuzz, runInput } from './engine.js';
import { fuzzTargets } from './targets.js';

const test = suite('fuzz targets');

for (const [name, makeTarget] of fuzzTargets()) {
  test(`${name}: its corpus replays without a crash, and every seed from a real stream is accepted`, () => {
    const target = makeTarget();
    const names = readdirSync(corpusDir(name)).sort();
    const inputs = readCorpus(name);
    assert.ok(inputs.length > 0, `${name} has a seed corpus`);
    inputs.forEach((input, i) => {
      const outcome = runInput(target, input);
      if ('crash' in outcome) throw new Error(`${name}/${names[i]} crashes`, { cause: outcome.crash });
      if (names[i]!.startsWith('seed-')) assert.is(outcome.code, undefined, `${name}/${names[i]}: ${outcome.message}`);
    });
  });

  test(`${name}: arbitrary bytes meet typed errors only`, () => {
    const target = makeTarget();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), (data) => {
        const outcome = runInput(target, data);
        if ('crash' in outcome) throw outcome.crash;
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  test(`${name}: a short coverage-guided run finds no crash`, () => {
    const stats = fuzz(makeTarget(), { seconds: 0.3, seed: 1, corpus: readCorpus(name) });
    assert.is(stats.crash?.error, undefined);
    assert.ok(stats.executions > 0 && stats.blocksCovered > 0, `${name} ran and saw coverage`);
  });
}

test.run();

// The `multifd` command end to end, as separate processes: receive and send over loopback TCP
// and through a migration stream file, exit statuses, and the NDJSON event stream.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { multifd, receiver, startMultifd } from '../helpers/cli.js';
import { faultProxy } from '../helpers/fault-proxy.js';
import { concatPages, makePages } from '../helpers/pages.js';

const test = suite('multifd command');
let dir: string;
let image: string;

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'multifd-cli-'));
  image = join(dir, 'guest.raw');
  writeFileSync(image, concatPages(makePages('mixed', 2048, 4096, 31)));
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test('send and receive over TCP: both exit 0, the image arrives with the same sha256, --json ends with a complete event', async () => {
  const out = join(dir, 'tcp.raw');
  const { address, done } = await receiver(out);
  const sent = await multifd(['send', '--in', image, '--to', address, '--multifd-channels', '4', '--multifd-compression', 'zstd', '--multifd-zstd-level', '3', '--threads', '2', '--json']);
  const received = await done;
  assert.is(sent.code, 0, sent.stderr);
  assert.is(received.code, 0, received.stderr);
  assert.is(sha256(out), sha256(image));
  const events = sent.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
  const last = events[events.length - 1]!;
  assert.is(last.event, 'complete');
  assert.is(last.status, 'completed');
  assert.is(last['destination-checksum'], last['source-checksum']);
  assert.is((last.normal as number) + (last.duplicate as number), 2048);
});

test('send --json through a link that goes down for a second, control included: outage and resumed events, both exit 0, the receiver says it was resumed', async () => {
  const out = join(dir, 'outage.raw');
  const { address, done } = await receiver(out, ['--reconnect-timeout', '20000']);
  const proxy = await faultProxy(Number(address.split(':').at(-1)));
  try {
    // 8 MiB at 4 MiB/s: two seconds, the outage comes after the first progress events.
    const sending = startMultifd(['send', '--in', image, '--to', proxy.endpoint, '--max-bandwidth', '4m', '--reconnect-timeout', '20000', '--json']);
    await sending.waitFor(/"event":"progress".*"status":"active"/);
    await proxy.resetOutage(1000);
    const sent = await sending.done;
    const received = await done;
    console.log(`  through the outage: send exited after ${sent.ms} ms, receive after ${received.ms} ms`);
    assert.is(sent.code, 0, sent.stderr);
    assert.is(received.code, 0, received.stderr);
    assert.is(sha256(out), sha256(image));
    const events = sent.stdout.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);
    const outage = events.find((e) => e.event === 'outage');
    const resumed = events.find((e) => e.event === 'resumed');
    assert.ok(outage && resumed && events.indexOf(outage) < events.indexOf(resumed), 'an outage event, then a resumed one');
    assert.ok((resumed!.downMs as number) >= 900, `down ${resumed!.downMs} ms`);
    const last = events[events.length - 1]!;
    assert.is(last.event, 'complete');
    assert.is(last.outages, 1);
    assert.is(last['control-resumes'], 1);
    assert.match(received.stdout, /resumed by the sender after an outage: 1 time/);
  } finally {
    await proxy.close();
  }
});

test('the summary follows QEMU info migrate', async () => {
  const out = join(dir, 'summary.raw');
  const { address, done } = await receiver(out);
  const sent = await multifd(['send', '--in', image, '--to', address, '--quiet']);
  await done;
  assert.is(sent.code, 0, sent.stderr);
  for (const line of ['Migration status: completed', 'total time:', 'transferred ram:', 'throughput:', 'duplicate: 512 pages', 'normal: 1536 pages', 'multifd bytes:', 'dirty sync count: 1']) {
    assert.ok(sent.stdout.includes(line), `missing "${line}" in\n${sent.stdout}`);
  }
});

test('send to a stream file, then receive --from it: the image arrives', async () => {
  const stream = join(dir, 'guest.mig');
  const out = join(dir, 'from-file.raw');
  const sent = await multifd(['send', '--in', image, '--to', `file:${stream}`, '--multifd-compression', 'lz4', '--quiet']);
  assert.is(sent.code, 0, sent.stderr);
  const received = await multifd(['receive', '--from', `file:${stream}`, '--out', out, '--json']);
  assert.is(received.code, 0, received.stderr);
  assert.is(sha256(out), sha256(image));
  assert.is((JSON.parse(received.stdout) as { event: string }).event, 'complete');
});

test('usage errors exit 2 and name the flag', async () => {
  const badLevel = await multifd(['send', '--in', image, '--to', 'tcp:127.0.0.1:1', '--multifd-compression', 'zlib', '--multifd-zlib-level', '12']);
  assert.is(badLevel.code, 2);
  assert.match(badLevel.stderr, /--multifd-zlib-level must be an integer from 1 to 9/);
  const unknown = await multifd(['send', '--bogus']);
  assert.is(unknown.code, 2);
  const badEndpoint = await multifd(['send', '--in', image, '--to', 'http://example']);
  assert.is(badEndpoint.code, 2);
  assert.match(badEndpoint.stderr, /http:\/\/example/);
});

test('a send with no receiver listening exits 1 with the reason', async () => {
  const run = await multifd(['send', '--in', image, '--to', 'tcp:127.0.0.1:9', '--quiet']);
  assert.is(run.code, 1);
  assert.match(run.stderr, /cannot connect/);
});

test.run();

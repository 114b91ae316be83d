// What a user hits in the first hour with the `multifd` command, run as child processes: every
// mistake ends with its exit status and one line saying what is wrong, never a stack trace,
// and at once (the bounds below tell "at once" from the 30 s waits these tests were written
// against, not fast from slow; the measured times are printed). Ctrl-C and SIGTERM cancel a
// migration and leave no `.partial` file on either side; no damage to a stream file leaves one.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { makeAuthorities } from '../helpers/certificates.js';
import { failedCleanly, multifd, receiver, startMultifd, type Run } from '../helpers/cli.js';
import { concatPages, makePages, seededRandom } from '../helpers/pages.js';
import { useTempDir } from '../helpers/support.js';

const test = suite('multifd command: the first hour');
const temp = useTempDir(test, 'first-hour');
/** A 4 MiB image of mixed pages. */
let image: string;
/** A good migration stream of `image` (zstd, 2 channels), and its records. */
let stream: string;
let records: StreamRecord[];

interface StreamRecord {
  /** File offset of the record header. */
  at: number;
  channel: number;
  length: number;
}

/** The records of a stream file: `u16 channel | u32 length | bytes`. */
function recordsOf(bytes: Buffer): StreamRecord[] {
  const out: StreamRecord[] = [];
  for (let at = 0; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at + 2);
    out.push({ at, channel: bytes.readUInt16BE(at), length });
    at += 6 + length;
  }
  return out;
}

test.before(async () => {
  image = temp.path('guest.raw');
  writeFileSync(image, concatPages(makePages('mixed', 1024, 4096, 11)));
  stream = temp.path('guest.mig');
  const sent = await multifd(['send', '--in', image, '--to', `file:${stream}`, '--multifd-compression', 'zstd', '--threads', '2', '--quiet']);
  assert.is(sent.code, 0, sent.stderr);
  records = recordsOf(readFileSync(stream));
});

/** Neither the image nor its .partial exists. */
function nothingLeft(path: string, label: string): void {
  assert.not.ok(existsSync(path), `${label}: ${path} exists`);
  assert.not.ok(existsSync(`${path}.partial`), `${label}: ${path}.partial was left behind`);
}

// 1. A receiver waits for its first sender as long as asked.

test('a receiver with no sender is still waiting after its (short) handshake timeout has passed; Ctrl-C ends it with 130', async () => {
  const out = temp.path('patient.raw');
  const waiting = await receiver(out, ['--handshake-timeout', '200']);
  // Waiting for something not to happen: 7 handshake timeouts' worth.
  await new Promise((resolve) => setTimeout(resolve, 1400));
  assert.is(waiting.child.exitCode, null, 'the receiver gave up without a sender');
  waiting.kill('SIGINT');
  failedCleanly(await waiting.done, 'receive', 130, /interrupted by SIGINT: migration cancelled$/, 10_000, 'receive, Ctrl-C while waiting');
  nothingLeft(out, 'Ctrl-C while waiting');
});

test('--accept-timeout ends a receiver nobody connects to with its own line and status 1', async () => {
  const run = await multifd(['receive', '--listen', 'tcp:127.0.0.1:0', '--out', temp.path('accept.raw'), '--accept-timeout', '500', '--handshake-timeout', '200']);
  failedCleanly(run, 'receive', 1, /no sender connected within 500 ms$/, 10_000, 'receive --accept-timeout 500');
  assert.match(run.stderr, /listening on tcp:127\.0\.0\.1:\d+/);
});

// 2. Start-up errors end the process at once.

test('a port already in use ends the receiver at once with one line and status 1', async () => {
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  try {
    const port = (holder.address() as AddressInfo).port;
    const run = await multifd(['receive', '--listen', `tcp:127.0.0.1:${port}`, '--out', temp.path('busy.raw')]);
    failedCleanly(run, 'receive', 1, new RegExp(`cannot listen on tcp:127\\.0\\.0\\.1:${port}: the address is already in use .*\\(EADDRINUSE\\)$`), 10_000, 'receive on a port in use');
    assert.not.match(run.stderr, /listening on/);
  } finally {
    await new Promise((resolve) => holder.close(resolve));
  }
});

test('a malformed --listen is a usage error (status 2) naming the flag', async () => {
  const cases: Array<[string, RegExp]> = [
    ['tcp:999.1.1.1:1', /--listen: "999\.1\.1\.1" is not an IPv4 address/],
    ['tcp:127.0.0.1:99999', /--listen: invalid endpoint "tcp:127\.0\.0\.1:99999": "99999" is not a port from 0 to 65535/],
    ['file:/tmp/x.mig', /--listen takes tcp: or unix:, not file:; use --from file:PATH/],
  ];
  for (const [listen, message] of cases) {
    failedCleanly(await multifd(['receive', '--listen', listen, '--out', temp.path('bad.raw')]), 'receive', 2, message, 10_000, `receive --listen ${listen}`);
  }
});

// 3. A stream file that is missing, empty or cut short fails at once, naming the file.

test('receive --from a missing, empty or truncated stream file fails at once naming the file and what is wrong', async () => {
  const out = temp.path('from.raw');
  const empty = temp.path('empty.mig');
  writeFileSync(empty, '');
  const short = temp.path('short.mig');
  writeFileSync(short, readFileSync(stream).subarray(0, 3));
  const cut = temp.path('cut.mig');
  const inside = records[3]!;
  writeFileSync(cut, readFileSync(stream).subarray(0, inside.at + 6 + (inside.length >> 1)));
  const boundary = temp.path('boundary.mig');
  const middle = records[records.length >> 1]!.at;
  writeFileSync(boundary, readFileSync(stream).subarray(0, middle));
  const cases: Array<[string, RegExp]> = [
    [temp.path('missing.mig'), /missing\.mig: no such file$/],
    [empty, /empty\.mig is empty: not a migration stream$/],
    [short, /short\.mig: record at byte 0 is truncated: header: expected 6 bytes, got 3$/],
    [cut, new RegExp(`cut\\.mig: record at byte ${inside.at} is truncated: payload: expected ${inside.length} bytes, got ${inside.length >> 1}$`)],
    [boundary, new RegExp(`boundary\\.mig: ends at byte ${middle} before the migration completed: the stream is truncated`)],
  ];
  for (const [path, message] of cases) {
    const run = await multifd(['receive', '--from', `file:${path}`, '--out', out]);
    failedCleanly(run, 'receive', 1, message, 10_000, `receive --from ${path.slice(path.lastIndexOf('/') + 1)}`);
    nothingLeft(out, path);
  }
});

// 4. TLS on one end only, or different keys or certificates, said in words at once.

/** TLS credential files in the temp dir: two PSK files and two unrelated CAs' certificates. */
let tlsFiles: Record<'psk' | 'otherPsk' | 'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey' | 'otherCa' | 'otherClientCert' | 'otherClientKey', string>;

test.before(() => {
  const { trusted, other } = makeAuthorities();
  const files = {
    psk: 'multifd:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n',
    otherPsk: 'multifd:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n',
    ca: trusted.ca,
    serverCert: trusted.serverCert,
    serverKey: trusted.serverKey,
    clientCert: trusted.clientCert,
    clientKey: trusted.clientKey,
    otherCa: other.ca,
    otherClientCert: other.clientCert,
    otherClientKey: other.clientKey,
  };
  tlsFiles = Object.fromEntries(
    Object.entries(files).map(([name, content]) => {
      const path = temp.path(`${name}.pem`);
      writeFileSync(path, content);
      return [name, path];
    }),
  ) as typeof tlsFiles;
});

/**
 * A receiver with `receiverFlags` and a sender with `senderFlags`: the sender exits 1 at once
 * with `senderSays`; the receiver prints a refusal saying `receiverSays` at once and goes on
 * waiting for a good sender (its default is to wait until stopped), so SIGTERM ends it.
 */
async function tlsMismatch(label: string, receiverFlags: string[], senderFlags: string[], senderSays: RegExp, receiverSays: RegExp): Promise<void> {
  const out = temp.path('tls.raw');
  const waiting = await receiver(out, receiverFlags);
  const started = performance.now();
  const refusal = waiting.waitFor(new RegExp(`multifd: refused a connection: ${receiverSays.source}`), 10_000).then(() => Math.round(performance.now() - started));
  const sent = await multifd(['send', '--in', image, '--to', waiting.address, '--threads', '1', '--quiet', ...senderFlags]);
  failedCleanly(sent, 'send', 1, senderSays, 10_000, `send, ${label}`);
  console.log(`    receive, ${label}: refusal printed ${await refusal} ms after the sender started`);
  assert.is(waiting.child.exitCode, null, 'the receiver stopped waiting for a good sender');
  waiting.kill('SIGTERM');
  failedCleanly(await waiting.done, 'receive', 143, /interrupted by SIGTERM/, 10_000, `receive, ${label}, SIGTERM`);
  nothingLeft(out, label);
}

test('a sender with TLS and a receiver without: both say so in words at once', async () => {
  await tlsMismatch(
    'TLS sender, plain receiver',
    [],
    ['--tls-psk-file', tlsFiles.psk],
    /TLS handshake with tcp:\S+ failed: the receiver closed the connection during the TLS handshake: it probably does not use TLS \(give both ends the same --tls-\* options\)$/,
    /the sender uses TLS but this receiver does not: give both ends the same --tls-\* options/,
  );
});

test('a plain sender and a receiver with TLS: both say so in words at once', async () => {
  await tlsMismatch(
    'plain sender, TLS receiver',
    ['--tls-psk-file', tlsFiles.psk],
    [],
    /the receiver at tcp:\S+ closed the connection before answering: if it uses TLS, give both ends the same --tls-\* options$/,
    /a sender connected without TLS but this receiver uses TLS \(give both ends the same --tls-\* options\)/,
  );
});

test('different pre-shared keys: both ends say the keys differ', async () => {
  await tlsMismatch(
    'different keys.psk',
    ['--tls-psk-file', tlsFiles.psk],
    ['--tls-psk-file', tlsFiles.otherPsk],
    /failed: the pre-shared keys differ \(check that both ends use the same keys\.psk\)$/,
    /a sender's pre-shared key differs from this receiver's \(check that both ends use the same keys\.psk\)/,
  );
});

test("a receiver certificate the sender's CA did not sign: the sender names its --tls-ca", async () => {
  await tlsMismatch(
    'untrusted receiver certificate',
    ['--tls-cert', tlsFiles.serverCert, '--tls-key', tlsFiles.serverKey],
    ['--tls-ca', tlsFiles.otherCa],
    /failed: the receiver's certificate is not signed by the CA in this sender's --tls-ca \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): check that --tls-ca is the CA that signed the receiver's --tls-cert$/,
    /a peer gave up the TLS handshake: a sender does so when it does not accept this receiver's certificate/,
  );
});

test("a sender certificate the receiver's CA did not sign: the receiver names its --tls-ca", async () => {
  await tlsMismatch(
    'untrusted sender certificate',
    ['--tls-cert', tlsFiles.serverCert, '--tls-key', tlsFiles.serverKey, '--tls-ca', tlsFiles.ca],
    ['--tls-ca', tlsFiles.ca, '--tls-cert', tlsFiles.otherClientCert, '--tls-key', tlsFiles.otherClientKey],
    /closed the connection before answering: it does not accept this sender's certificate \(--tls-cert must be signed by the CA in the receiver's --tls-ca\)$/,
    /a sender's certificate is not signed by the CA in this receiver's --tls-ca \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\)/,
  );
});

test('a receiver refusing every sender for TLS still ends at --accept-timeout, naming the refusal', async () => {
  // The timeout must outlast the sender's start-up and refusal: a CLI process can take seconds
  // to start on a loaded machine, and a timeout that passed first would name no refusal.
  const waiting = await receiver(temp.path('tls-timeout.raw'), ['--tls-psk-file', tlsFiles.psk, '--accept-timeout', '15000']);
  const sent = await multifd(['send', '--in', image, '--to', waiting.address, '--quiet', '--tls-psk-file', tlsFiles.otherPsk]);
  assert.is(sent.code, 1, sent.stderr);
  failedCleanly(await waiting.done, 'receive', 1, /no sender connected within 15000 ms \(refused 1 connection\(s\), the last because a sender's pre-shared key differs/, 30_000, 'receive --accept-timeout 15000 after a refusal');
});

// 5. Ctrl-C and SIGTERM cancel a migration and leave no .partial on either side.

/** A sender that takes seconds (2 MiB/s), once it reports progress; the JSON lines say so. */
function slowSender(to: string): ReturnType<typeof startMultifd> {
  return startMultifd(['send', '--in', image, '--to', to, '--max-bandwidth', '2m', '--threads', '1', '--json']);
}

/** Resolves once a file exists (the test then knows the migration wrote something). */
async function exists(path: string): Promise<void> {
  for (let waited = 0; !existsSync(path); waited += 20) {
    if (waited > 20_000) throw new Error(`${path} did not appear`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  const status = signal === 'SIGINT' ? 130 : 143;

  test(`${signal} on a receiver mid-transfer exits ${status} and removes FILE.partial; the sender fails`, async () => {
    const out = temp.path(`receiver-${signal}.raw`);
    const waiting = await receiver(out);
    const sender = slowSender(waiting.address);
    await sender.waitFor(/"event":"progress","status":"active"/);
    await exists(`${out}.partial`);
    waiting.kill(signal);
    failedCleanly(await waiting.done, 'receive', status, new RegExp(`interrupted by ${signal}: migration cancelled, .*receiver-${signal}\\.raw\\.partial removed$`), 10_000, `receive, ${signal} mid-transfer`);
    nothingLeft(out, `receiver ${signal}`);
    const sent = await sender.done;
    assert.is(sent.code, 1, sent.stderr);
  });

  test(`${signal} on a sender writing a stream file exits ${status}; neither PATH nor PATH.partial remains`, async () => {
    const path = temp.path(`sender-${signal}.mig`);
    const sender = slowSender(`file:${path}`);
    await sender.waitFor(/"event":"progress","status":"active"/);
    await exists(`${path}.partial`);
    assert.not.ok(existsSync(path), 'the stream file carries its final name before it is complete');
    sender.kill(signal);
    failedCleanly(await sender.done, 'send', status, new RegExp(`interrupted by ${signal}: migration cancelled, .*sender-${signal}\\.mig\\.partial removed$`), 10_000, `send to a file, ${signal} mid-transfer`);
    nothingLeft(path, `sender ${signal}`);
  });
}

test('SIGINT on a sender over TCP exits 130; its receiver fails and removes FILE.partial', async () => {
  const out = temp.path('sender-tcp-sigint.raw');
  const waiting = await receiver(out);
  const sender = slowSender(waiting.address);
  await sender.waitFor(/"event":"progress","status":"active"/);
  await exists(`${out}.partial`);
  sender.kill('SIGINT');
  failedCleanly(await sender.done, 'send', 130, /interrupted by SIGINT: migration cancelled$/, 10_000, 'send over TCP, SIGINT mid-transfer');
  failedCleanly(await waiting.done, 'receive', 1, /./, 10_000, 'receive, its sender interrupted');
  nothingLeft(out, 'sender interrupted');
});

test('a stream file written by send is named only when complete, and receive --from reads it', async () => {
  const path = temp.path('complete.mig');
  const sent = await multifd(['send', '--in', image, '--to', `file:${path}`, '--quiet']);
  assert.is(sent.code, 0, sent.stderr);
  assert.ok(existsSync(path));
  assert.not.ok(existsSync(`${path}.partial`));
  const out = temp.path('complete.raw');
  const received = await multifd(['receive', '--from', `file:${path}`, '--out', out, '--quiet']);
  assert.is(received.code, 0, received.stderr);
  assert.ok(readFileSync(out).equals(readFileSync(image)));
});

// 6. However a stream file is damaged, receive --from fails with one line and leaves no image.

/** A copy of the good stream with `damage` done to it. */
function damaged(damage: (bytes: Buffer) => Buffer): Buffer {
  return damage(Buffer.from(readFileSync(stream)));
}

/** Sets byte `at` of `bytes` to `value` (xor with 0xff when absent: surely different). */
function flip(bytes: Buffer, at: number, value?: number): Buffer {
  bytes[at] = value ?? bytes[at]! ^ 0xff;
  return bytes;
}

/** Runs `receive --from` on each file, two at a time, and checks each failed cleanly and left nothing. */
async function receivesFail(files: Array<[label: string, bytes: Buffer]>): Promise<void> {
  const queue = files.map(([label, bytes], i) => ({ label, path: temp.path(`damaged-${i}.mig`), out: temp.path(`damaged-${i}.raw`), bytes }));
  const runs: Array<{ label: string; out: string; run: Run }> = [];
  const worker = async () => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      writeFileSync(next.path, next.bytes);
      runs.push({ label: next.label, out: next.out, run: await multifd(['receive', '--from', `file:${next.path}`, '--out', next.out, '--threads', '1']) });
    }
  };
  await Promise.all([worker(), worker()]);
  for (const { label, out, run } of runs) {
    // Two at a time on a shared machine: a bound well under the 30 s the bug waited, with room.
    failedCleanly(run, 'receive', 1, /damaged-\d+\.mig/, 15_000, label);
    nothingLeft(out, label);
  }
}

test('every kind of damage to a stream file fails receive --from with one line, and neither --out nor --out.partial remains', async () => {
  const mid = records[records.length >> 1]!;
  const last = records[records.length - 1]!;
  const packet = records.find((r) => r.channel !== 0 && r.length > 1000)!;
  const data = records.find((r) => r.channel === 1 && r.length > 1000 && r.at > packet.at)!;
  const garbage = Buffer.from(Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 0xff));
  const record = (channel: number, payload: Buffer) => {
    const header = Buffer.alloc(6);
    header.writeUInt16BE(channel, 0);
    header.writeUInt32BE(payload.length, 2);
    return Buffer.concat([header, payload]);
  };
  await receivesFail([
    ['truncated inside a record header', damaged((b) => b.subarray(0, mid.at + 3))],
    ['truncated inside a record payload', damaged((b) => b.subarray(0, mid.at + 6 + (mid.length >> 1)))],
    ['truncated after the first record', damaged((b) => b.subarray(0, records[1]!.at))],
    ['truncated at a record boundary in the middle', damaged((b) => b.subarray(0, mid.at))],
    ['truncated before the last record', damaged((b) => b.subarray(0, last.at))],
    ['a record length one too long', damaged((b) => (b.writeUInt32BE(mid.length + 1, mid.at + 2), b))],
    ['a record length of 0', damaged((b) => (b.writeUInt32BE(0, mid.at + 2), b))],
    ['a record length past 16 MiB', damaged((b) => (b.writeUInt32BE(0xffffffff, mid.at + 2), b))],
    ['a data record moved to the control channel', damaged((b) => (b.writeUInt16BE(0, data.at), b))],
    ['a data record moved to a channel of its own', damaged((b) => (b.writeUInt16BE(7, data.at), b))],
    ['the hello moved to another channel', damaged((b) => (b.writeUInt16BE(9, 0), b))],
    ['a packet header byte flipped (its round)', damaged((b) => flip(b, packet.at + 6 + 15))],
    ['a packet header byte flipped (its magic)', damaged((b) => flip(b, packet.at + 6 + 1))],
    ['a payload byte flipped', damaged((b) => flip(b, packet.at + 6 + packet.length - 5))],
    ['a byte of the hello flipped', damaged((b) => flip(b, 6 + 20))],
    ['a byte of a channel init flipped', damaged((b) => flip(b, records[1]!.at + 6 + 10))],
    ['garbage appended', damaged((b) => Buffer.concat([b, garbage]))],
    ['a well-formed record of garbage appended to a data channel', damaged((b) => Buffer.concat([b, record(1, garbage)]))],
    ['a well-formed record of garbage appended to the control channel', damaged((b) => Buffer.concat([b, record(0, garbage)]))],
  ]);
});

test('30 randomly damaged stream files (seeded) all fail receive --from with one line and leave nothing', async () => {
  const random = seededRandom(2024);
  const below = (n: number) => Math.floor(random() * n);
  const size = statSync(stream).size;
  const files: Array<[string, Buffer]> = [];
  for (let i = 0; i < 30; i++) {
    const kind = below(3);
    if (kind === 0) {
      const at = below(size);
      files.push([`random #${i}: truncated at byte ${at}`, damaged((b) => b.subarray(0, at))]);
    } else if (kind === 1) {
      const flips = Array.from({ length: 1 + below(4) }, () => [below(size), 1 + below(255)] as const);
      files.push([`random #${i}: bytes changed at ${flips.map(([at]) => at).join(', ')}`, damaged((b) => (flips.forEach(([at, x]) => (b[at] = b[at]! ^ x)), b))]);
    } else {
      const extra = Buffer.from(Array.from({ length: 1 + below(200) }, () => below(256)));
      files.push([`random #${i}: ${extra.length} bytes appended`, damaged((b) => Buffer.concat([b, extra]))]);
    }
  }
  await receivesFail(files);
});

// 7. --out is checked before listening.

test('--out into a missing folder fails before listening, with one line and status 1; so does send --to file: there', async () => {
  const out = temp.path('no-such-folder/image.raw');
  const run = await multifd(['receive', '--listen', 'tcp:127.0.0.1:0', '--out', out]);
  failedCleanly(run, 'receive', 1, /--out .*no-such-folder\/image\.raw: the folder .*no-such-folder does not exist$/, 10_000, 'receive --out into a missing folder');
  assert.not.match(run.stderr, /listening on/);
  const folder = temp.path('a-file-not-a-folder');
  writeFileSync(folder, 'x');
  const notFolder = await multifd(['receive', '--listen', 'tcp:127.0.0.1:0', '--out', `${folder}/image.raw`]);
  failedCleanly(notFolder, 'receive', 1, /is not a folder$/, 10_000, 'receive --out under a regular file');
  const sent = await multifd(['send', '--in', image, '--to', `file:${temp.path('no-such-folder/x.mig')}`]);
  failedCleanly(sent, 'send', 1, /--to .*no-such-folder\/x\.mig: the folder .*no-such-folder does not exist$/, 10_000, 'send --to file: into a missing folder');
});

// 8. The command line itself.

test('an unknown option names the closest known one (exit 2), or none when nothing is close', async () => {
  failedCleanly(
    await multifd(['send', '--multifd-chanels', '4']),
    'send',
    2,
    /^multifd send: unknown option --multifd-chanels \(did you mean --multifd-channels\?\)$/,
    10_000,
    'send --multifd-chanels',
  );
  failedCleanly(await multifd(['receive', '--bogus']), 'receive', 2, /^multifd receive: unknown option --bogus$/, 10_000, 'receive --bogus');
  failedCleanly(await multifd(['receive', '--out']), 'receive', 2, /^multifd receive: --out needs a value: --out <FILE>$/, 10_000, 'receive --out (no value)');
});

test('--version and -V print the package version', async () => {
  const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const run = await multifd([flag]);
    assert.is(run.code, 0, run.stderr);
    assert.is(run.stdout.trim(), version);
  }
});

test("demo --help shows the demo's own defaults (zstd) and send --help QEMU's (none); both offer --verify", async () => {
  const demo = await multifd(['demo', '--help']);
  assert.is(demo.code, 0, demo.stderr);
  assert.match(demo.stdout, /--multifd-compression <CODEC>\s+none\|zlib\|zstd\|lz4\|qatzip\|qpl\|uadk\|auto \(default zstd;/);
  const send = await multifd(['send', '--help']);
  assert.match(send.stdout, /--multifd-compression <CODEC>\s+none\|zlib\|zstd\|lz4\|qatzip\|qpl\|uadk\|auto \(default none;/);
  for (const help of [demo.stdout, send.stdout]) assert.match(help, /--verify\s+after the last round, hash the whole source again and compare with the destination/);
});

test('the demo explains a downtime over its limit', async () => {
  // An idle guest converges at once; any downtime at all exceeds a limit of 0 ms.
  const run = await multifd(['demo', '--size', '16m', '--guest', 'idle', '--downtime-limit', '0', '--threads', '2']);
  assert.is(run.code, 0, run.stderr);
  assert.match(run.stderr, /downtime \d+ ms exceeded the 0 ms downtime-limit: the switchover expected \d+ ms for the pages dirty at the last sync.*the receiver confirming the image checksum/);
});

test.run();

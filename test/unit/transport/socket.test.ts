import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { TransportError } from '../../../src/errors.js';
import { writeWithBackpressure } from '../../../src/transport/backpressure.js';
import { parseEndpoint } from '../../../src/transport/endpoint.js';
import { connect, isLoopbackPeer, listen, type Listener } from '../../../src/transport/socket.js';
import { failure, useTempDir } from '../../helpers/support.js';

const MiB = 1024 * 1024;
const test = suite('tcp and unix sockets');
const temp = useTempDir(test, 'socket');
const listeners: Listener[] = [];
const sockets: Duplex[] = [];

test.after(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(listeners.map((l) => l.close()));
});

/** Listens on `text` and resolves each accepted socket in turn. */
async function server(text: string): Promise<{ listener: Listener; accepted: () => Promise<Socket> }> {
  const queue: Socket[] = [];
  const waiting: ((s: Socket) => void)[] = [];
  const listener = await listen(parseEndpoint(text), {
    onConnection(socket) {
      sockets.push(socket);
      const waiter = waiting.shift();
      if (waiter) waiter(socket);
      else queue.push(socket);
    },
  });
  listeners.push(listener);
  const accepted = (): Promise<Socket> => {
    const socket = queue.shift();
    return socket ? Promise.resolve(socket) : new Promise((resolve) => waiting.push(resolve));
  };
  return { listener, accepted };
}

async function dial(text: string): Promise<Socket> {
  const socket = await connect(parseEndpoint(text), { timeoutMs: 2000 });
  sockets.push(socket);
  return socket;
}

async function sha256Of(stream: Duplex, slow = false): Promise<{ digest: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).byteLength;
    // A slow reader: stop for a moment every 4 MiB, so the sender's buffers fill up.
    if (slow && bytes % (4 * MiB) < (chunk as Buffer).byteLength) await new Promise((r) => setTimeout(r, 2));
  }
  return { digest: hash.digest('hex'), bytes };
}

test('listens on 127.0.0.1:0 and reports the real port; bytes cross in both directions', async () => {
  const { listener, accepted } = await server('tcp:127.0.0.1:0');
  const endpoint = parseEndpoint(listener.address);
  assert.is(endpoint.kind, 'tcp');
  assert.ok(endpoint.kind === 'tcp' && endpoint.port > 0, listener.address);
  const client = await dial(listener.address);
  const peer = await accepted();
  assert.ok(isLoopbackPeer(client) && isLoopbackPeer(peer), 'both ends see a loopback peer');
  client.write('hello ');
  client.end('destination');
  peer.end('ack');
  const [there, back] = await Promise.all([sha256Of(peer), sha256Of(client)]);
  assert.is(there.digest, createHash('sha256').update('hello destination').digest('hex'));
  assert.is(back.bytes, 3);
});

test('64 MiB arrive complete and in order through a TCP pair with a slow reader', async () => {
  const { listener, accepted } = await server('tcp:127.0.0.1:0');
  const client = await dial(listener.address);
  const peer = await accepted();
  const received = sha256Of(peer, true);
  const sent = createHash('sha256');
  const chunk = randomBytes(256 * 1024);
  let waits = 0;
  for (let i = 0; i < 256; i++) {
    chunk.writeUInt32BE(i, 0); // every chunk differs, so reordering would show
    const bytes = Buffer.from(chunk); // the socket keeps what it is given until flushed
    sent.update(bytes);
    const wait = writeWithBackpressure(client, bytes);
    if (wait) {
      waits++;
      await wait;
    }
  }
  client.end();
  const { digest, bytes } = await received;
  assert.is(bytes, 64 * MiB);
  assert.is(digest, sent.digest('hex'));
  assert.ok(waits > 0, 'the writer had to wait for drain');
});

test('listens and connects on a unix socket in a temp dir', async () => {
  const path = temp.path('channel.sock');
  const { listener, accepted } = await server(`unix:${path}`);
  assert.is(listener.address, `unix:${path}`);
  const client = await dial(listener.address);
  const peer = await accepted();
  assert.not.ok(isLoopbackPeer(client), 'a unix socket has no address to tell');
  client.end(Buffer.from([1, 2, 3]));
  assert.is((await sha256Of(peer)).bytes, 3);
  await listener.close();
  assert.not.ok(existsSync(path), 'closing removes the socket file');
});

test('removes a stale unix socket left by a dead process, but not a live one or a regular file', async () => {
  const stale = temp.path('stale.sock');
  // A process that dies while listening leaves its socket file behind.
  spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.ok(existsSync(stale), 'the dead listener left its socket file');
  const { listener } = await server(`unix:${stale}`);
  await (await dial(listener.address)).end();

  for (const path of [stale, temp.path('regular-file')]) {
    if (!existsSync(path)) await writeFile(path, 'not a socket');
    const error = await failure(() => listen(parseEndpoint(`unix:${path}`), { onConnection: () => {} }), 'ERR_LISTEN');
    assert.instance(error, TransportError);
    assert.is((error.cause as NodeJS.ErrnoException).code, 'EADDRINUSE');
  }
  assert.is(readFileSync(temp.path('regular-file'), 'utf8'), 'not a socket');
});

test('close() stops accepting but leaves accepted connections open', async () => {
  const { listener, accepted } = await server('tcp:127.0.0.1:0');
  const client = await dial(listener.address);
  const peer = await accepted();
  await listener.close();
  await failure(() => connect(parseEndpoint(listener.address), { timeoutMs: 2000 }), 'ERR_CONNECT');
  client.end('still here');
  assert.is((await sha256Of(peer)).bytes, 10);
});

test('connect fails with ERR_CONNECT naming the endpoint and carrying the system error', async () => {
  const { listener } = await server('tcp:127.0.0.1:0');
  await listener.close();
  for (const [text, code] of [
    [listener.address, 'ECONNREFUSED'],
    [`unix:${temp.path('nobody.sock')}`, 'ENOENT'],
  ] as const) {
    const error = await failure(() => connect(parseEndpoint(text)), 'ERR_CONNECT');
    assert.instance(error, TransportError);
    assert.match(error.message, text);
    assert.is((error.cause as NodeJS.ErrnoException).code, code);
  }
});

test('file endpoints are refused by listen and connect', async () => {
  const file = parseEndpoint('file:/tmp/x.mig');
  await failure(() => listen(file, { onConnection: () => {} }), 'ERR_ENDPOINT');
  await failure(() => connect(file), 'ERR_ENDPOINT');
});

test.run();

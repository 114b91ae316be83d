// The outage tests' fault proxy (test/helpers/fault-proxy.ts) does what it says: it forwards
// bytes in order, a reset reaches both ends, refused connections are reset, and a silent
// outage delays bytes without losing any.
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { faultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { until } from '../helpers/support.js';

const test = suite('fault proxy');
const sockets = new Set<Socket>();
let proxy: FaultProxy;
let server: ReturnType<typeof createServer>;
const received: Buffer[] = [];
let serverSide: Socket | undefined;

test.before.each(async () => {
  received.length = 0;
  server = createServer((socket) => {
    serverSide = socket;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => received.push(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy = await faultProxy((server.address() as AddressInfo).port);
});

test.after.each(async () => {
  for (const socket of sockets) socket.destroy();
  sockets.clear();
  await proxy.close();
  await new Promise((resolve) => server.close(resolve));
});

function dial(): Socket {
  const port = Number(proxy.endpoint.split(':').at(-1));
  const socket = createConnection({ host: '127.0.0.1', port });
  sockets.add(socket);
  return socket;
}

const closedWith = (socket: Socket) => new Promise<string | undefined>((resolve) => {
  let code: string | undefined;
  socket.on('error', (error: NodeJS.ErrnoException) => (code = error.code));
  socket.on('close', () => resolve(code));
});

test('bytes cross in order', async () => {
  const client = dial();
  for (let i = 0; i < 100; i++) client.write(Buffer.alloc(1000, i));
  await until(() => Buffer.concat(received).byteLength === 100_000);
  const all = Buffer.concat(received);
  for (let i = 0; i < 100; i++) assert.is(all[i * 1000], i);
});

test('a reset reaches both ends as ECONNRESET', async () => {
  const client = dial();
  client.write('x');
  await until(() => received.length > 0);
  assert.ok(serverSide, 'the target accepted the connection');
  const [clientCode, serverCode] = [closedWith(client), closedWith(serverSide!)];
  proxy.resetAll();
  assert.equal(await Promise.all([clientCode, serverCode]), ['ECONNRESET', 'ECONNRESET']);
});

test('during a reset outage new connections are reset; after it they pass again', async () => {
  const outage = proxy.resetOutage(200);
  assert.is(await closedWith(dial()), 'ECONNRESET');
  await outage;
  const client = dial();
  client.write('after');
  await until(() => Buffer.concat(received).toString() === 'after');
  assert.is(Buffer.concat(received).toString(), 'after');
});

test('a silent outage holds every byte until it ends, and loses none', async () => {
  const client = dial();
  client.write('before ');
  await until(() => received.length > 0);
  const outage = proxy.silentOutage(300);
  client.write('during');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.is(Buffer.concat(received).toString(), 'before ', 'nothing moved during the outage');
  await outage;
  await until(() => Buffer.concat(received).toString() === 'before during');
  assert.is(Buffer.concat(received).toString(), 'before during');
});

test.run();

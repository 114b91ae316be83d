// TLS and who gets in: over real loopback TCP, a migration with a pre-shared key or with
// certificates completes; a wrong key, an untrusted CA, a plain-TCP peer, a slow-loris peer
// and stray data channels are refused with typed errors before destination memory exists or
// is touched.
import { connect as netConnect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MultifdError } from '../../src/errors.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { listen, type Listening } from '../../src/migration/listen.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint, parsePskFile, type TlsCredentials } from '../../src/transport/index.js';
import { makeAuthorities, type Authority } from '../helpers/certificates.js';
import { filledMemory, sameContent } from '../helpers/migration.js';
import { failure, until } from '../helpers/support.js';

const test = suite('TLS and refusals');
let pool: WorkerPool;
let trusted: Authority;
let other: Authority;

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
  ({ trusted, other } = makeAuthorities());
});

test.after(async () => {
  await pool.close();
});

const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }], seed: 3 });
const PSK = parsePskFile('multifd:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n');
const WRONG_PSK = parsePskFile('multifd:ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n');

/**
 * A receiver on loopback; `created` tells whether it ever built destination memory. It waits
 * `handshakeTimeoutMs` for a sender too (refused connections do not end a receiver's wait).
 */
async function receiver(tls: TlsCredentials | undefined, handshakeTimeoutMs = 5000, connectionTimeoutMs?: number) {
  let destination: GuestMemory | undefined;
  let created = false;
  const listening = await listen('tcp:127.0.0.1:0', {
    destination: (hello) => {
      created = true;
      return memoryDestination((m) => (destination = m))(hello);
    },
    pool,
    tls,
    acceptTimeoutMs: handshakeTimeoutMs,
    handshakeTimeoutMs,
    connectionTimeoutMs,
  });
  listening.result.catch(() => {});
  return { listening, destination: () => destination, created: () => created };
}

async function send(listening: Listening, tls: TlsCredentials | undefined, sockets: Socket[] = []) {
  return migrate({
    source: guestMemorySource(source),
    connect: async () => {
      const socket = await connect(parseEndpoint(listening.address), { tls, timeoutMs: 5000 });
      sockets.push(socket);
      return socket;
    },
    pool,
    channels: 2,
    codec: 'zstd',
    handshakeTimeoutMs: 5000,
  });
}

/** `promise` fails with a MultifdError carrying one of `codes`. */
async function rejects(promise: Promise<unknown>, codes: string[]): Promise<MultifdError> {
  const error = await failure(() => promise, codes);
  assert.instance(error, MultifdError);
  return error as MultifdError;
}

/**
 * The receiver refused someone, saying `words`, and still holds no destination; it then gives
 * up waiting for a sender.
 */
async function refusedUntouched(side: Awaited<ReturnType<typeof receiver>>, code: string, words?: RegExp): Promise<void> {
  await until(() => side.listening.receiver.refused.length > 0);
  assert.is(side.listening.receiver.refused[0]?.code, code, side.listening.receiver.refused[0]?.message);
  if (words) assert.match(side.listening.receiver.refused[0]!.message, words);
  assert.not.ok(side.created(), 'destination memory was created');
  await rejects(side.listening.result, ['ERR_ACCEPT_TIMEOUT', 'ERR_HANDSHAKE_TIMEOUT', 'ERR_CONTROL_TIMEOUT']);
}

async function completes(tlsReceiver: TlsCredentials, tlsSender: TlsCredentials) {
  const side = await receiver(tlsReceiver);
  const sockets: Socket[] = [];
  const stats = await send(side.listening, tlsSender, sockets);
  const result = await side.listening.result;
  assert.is(stats['destination-checksum'], stats['source-checksum']);
  assert.is(result.checksum.toString(16).padStart(16, '0'), stats['source-checksum']);
  assert.ok(sameContent(side.destination()!, source));
  assert.is(sockets.length, 3, 'control and 2 data channels');
  for (const socket of sockets) assert.is((socket as TLSSocket).getProtocol?.(), 'TLSv1.3', 'every connection runs TLS 1.3');
}

test('with the same pre-shared key the migration completes, every connection under TLS 1.3', async () => {
  await completes({ psk: PSK }, { psk: PSK });
});

test('with certificates verified both ways the migration completes', async () => {
  await completes(
    { cert: trusted.serverCert, key: trusted.serverKey, ca: trusted.ca },
    { ca: trusted.ca, cert: trusted.clientCert, key: trusted.clientKey },
  );
});

test('a sender with the wrong pre-shared key is refused: ERR_TLS_HANDSHAKE on both sides, no destination', async () => {
  const side = await receiver({ psk: PSK }, 1500);
  const error = await rejects(send(side.listening, { psk: WRONG_PSK }), ['ERR_TLS_HANDSHAKE']);
  assert.match(error.message, /the pre-shared keys differ/);
  await refusedUntouched(side, 'ERR_TLS_HANDSHAKE', /pre-shared key differs/);
});

test('a sender trusting another CA refuses the receiver (ERR_TLS_HANDSHAKE)', async () => {
  const side = await receiver({ cert: trusted.serverCert, key: trusted.serverKey, ca: trusted.ca }, 1500);
  const error = await rejects(send(side.listening, { ca: other.ca, cert: trusted.clientCert, key: trusted.clientKey }), ['ERR_TLS_HANDSHAKE']);
  assert.match(error.message, /UNABLE_TO_VERIFY|self.signed|unable to verify/i);
  assert.match(error.message, /not signed by the CA in this sender's --tls-ca/);
  await refusedUntouched(side, 'ERR_TLS_HANDSHAKE');
});

test('a sender whose certificate another CA signed is refused by the receiver', async () => {
  const side = await receiver({ cert: trusted.serverCert, key: trusted.serverKey, ca: trusted.ca }, 1500);
  await rejects(send(side.listening, { ca: trusted.ca, cert: other.clientCert, key: other.clientKey }), ['ERR_TLS_HANDSHAKE', 'ERR_CONTROL_CLOSED', 'ERR_HANDSHAKE']);
  await refusedUntouched(side, 'ERR_TLS_HANDSHAKE', /certificate is not signed by the CA in this receiver's --tls-ca/);
});

test('a plain-TCP sender against a TLS receiver is refused before its hello is read', async () => {
  const side = await receiver({ psk: PSK }, 1500);
  await rejects(send(side.listening, undefined), ['ERR_CONTROL_CLOSED', 'ERR_CONTROL_TIMEOUT']);
  await refusedUntouched(side, 'ERR_TLS_HANDSHAKE', /connected without TLS but this receiver uses TLS/);
});

/** Opens a raw TCP connection that sends `bytes` one byte every `intervalMs`; closes it when the peer does. */
function slowLoris(address: string, bytes: Uint8Array, intervalMs: number): Promise<void> {
  const { host, port } = parseEndpoint(address) as { host: string; port: number };
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    let sent = 0;
    const timer = setInterval(() => {
      if (sent < bytes.byteLength && !socket.destroyed) socket.write(bytes.subarray(sent, ++sent));
    }, intervalMs);
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve();
    });
  });
}

test('a slow-loris peer (one byte every 50 ms) is dropped after the connection timeout; the migration then completes', async () => {
  const side = await receiver(undefined, 5000, 300);
  // A data channel init trickling in: its 32 bytes would take 1.6 s.
  const init = new Uint8Array(32);
  new DataView(init.buffer).setUint32(0, 0x4d464444); // "MFDD"
  await slowLoris(side.listening.address, init, 50);
  assert.is(side.listening.receiver.refused[0]?.code, 'ERR_CONNECTION_TIMEOUT');
  assert.not.ok(side.created(), 'destination memory was created');
  const stats = await send(side.listening, undefined);
  await side.listening.result;
  assert.is(stats['destination-checksum'], stats['source-checksum']);
});

test('under TLS, a slow-loris peer never finishes its handshake and is dropped', async () => {
  const side = await receiver({ psk: PSK }, 400);
  await slowLoris(side.listening.address, new Uint8Array(512).fill(0x16), 50);
  await refusedUntouched(side, 'ERR_TLS_HANDSHAKE');
});

test.run();

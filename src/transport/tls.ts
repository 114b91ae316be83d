// TLS on every connection of a migration (control and each data channel, as QEMU runs one TLS
// session per multifd channel), with node:tls: a pre-shared key (TLS 1.3 external PSK, QEMU's
// keys.psk file format) or X.509 certificates verified against a CA on both sides. A peer
// without the key or a trusted certificate never gets past the handshake, so it never reaches
// the receiver's parser, let alone destination memory.
import { isIP, type Socket } from 'node:net';
import { readFile } from 'node:fs/promises';
import { connect as tlsConnect, createServer, type ConnectionOptions, type TlsOptions as NodeTlsOptions, type TLSSocket } from 'node:tls';
import { TransportError, type ErrorContext } from '../errors.js';

/** A pre-shared key and the identity it is known by. */
export interface PreSharedKey {
  identity: string;
  key: Buffer;
}

/**
 * TLS credentials of one side. Either `psk` (every key the side accepts; a sender uses the
 * first), or certificates: a receiver needs `cert` and `key`, a sender needs `ca` to verify the
 * receiver; with `ca` on the receiver and `cert`/`key` on the sender, both verify each other.
 */
export interface TlsCredentials {
  psk?: readonly PreSharedKey[];
  cert?: Buffer;
  key?: Buffer;
  ca?: Buffer;
  /** The name the receiver's certificate must carry; default: the host connected to. */
  hostname?: string;
}

/** Shortest key accepted: 128 bits. */
const MIN_PSK_BYTES = 16;
/** TLS 1.3 only: AES-GCM first (AES-NI), ChaCha20 for hosts without it. */
const TLS13_CIPHERS = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

function tlsError(code: string, message: string, cause?: unknown, context: ErrorContext = {}): TransportError {
  return new TransportError(code, message, { cause, context });
}

/**
 * Parses a PSK file in QEMU's `keys.psk` format: one `identity:hexkey` per line (blank lines and
 * `#` comments ignored).
 * @throws TransportError `ERR_TLS_PSK_FILE` naming the line that is wrong.
 */
export function parsePskFile(text: string, name = 'PSK file'): PreSharedKey[] {
  const keys: PreSharedKey[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const colon = line.lastIndexOf(':');
    const identity = line.slice(0, colon);
    const hex = line.slice(colon + 1);
    if (colon <= 0 || !/^([0-9a-fA-F]{2})+$/.test(hex)) {
      throw tlsError('ERR_TLS_PSK_FILE', `${name}, line ${i + 1}: expected IDENTITY:HEXKEY`, undefined, { line: i + 1 });
    }
    if (hex.length / 2 < MIN_PSK_BYTES) {
      throw tlsError('ERR_TLS_PSK_FILE', `${name}, line ${i + 1}: the key has ${hex.length / 2} bytes, fewer than ${MIN_PSK_BYTES}`, undefined, { line: i + 1 });
    }
    keys.push({ identity, key: Buffer.from(hex, 'hex') });
  });
  if (keys.length === 0) throw tlsError('ERR_TLS_PSK_FILE', `${name} holds no key`);
  return keys;
}

/**
 * Reads credentials from files (the CLI's --tls-psk-file, --tls-cert, --tls-key, --tls-ca);
 * undefined when none is given.
 * @throws TransportError `ERR_TLS_PSK_FILE`, `ERR_TLS_CREDENTIALS` (unreadable file, PSK mixed
 * with certificates).
 */
export async function loadTlsCredentials(files: { pskFile?: string; certFile?: string; keyFile?: string; caFile?: string; hostname?: string }): Promise<TlsCredentials | undefined> {
  const read = async (path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return await readFile(path);
    } catch (error) {
      throw tlsError('ERR_TLS_CREDENTIALS', `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? error}`, error, { path });
    }
  };
  const [psk, cert, key, ca] = await Promise.all([read(files.pskFile), read(files.certFile), read(files.keyFile), read(files.caFile)]);
  if (!psk && !cert && !key && !ca) return undefined;
  if (psk && (cert || key || ca)) throw tlsError('ERR_TLS_CREDENTIALS', 'give either a PSK file or certificates, not both');
  return { psk: psk ? parsePskFile(psk.toString('utf8'), files.pskFile) : undefined, cert, key, ca, hostname: files.hostname };
}

/** node:tls options for a receiver. */
function tlsServerOptions(credentials: TlsCredentials, handshakeTimeoutMs: number): NodeTlsOptions {
  const base = { minVersion: 'TLSv1.3' as const, ciphers: TLS13_CIPHERS, handshakeTimeout: handshakeTimeoutMs };
  if (credentials.psk) {
    const keys = new Map(credentials.psk.map((k) => [k.identity, k.key]));
    return { ...base, pskCallback: (_socket, identity) => keys.get(identity) ?? null };
  }
  if (!credentials.cert || !credentials.key) throw tlsError('ERR_TLS_CREDENTIALS', 'a TLS receiver needs --tls-cert and --tls-key (or --tls-psk-file)');
  return { ...base, cert: credentials.cert, key: credentials.key, ca: credentials.ca, requestCert: credentials.ca !== undefined, rejectUnauthorized: true };
}

/** node:tls options for a sender connecting to `host`. */
function tlsClientOptions(credentials: TlsCredentials, host: string): ConnectionOptions {
  const base = { minVersion: 'TLSv1.3' as const, ciphers: TLS13_CIPHERS };
  if (credentials.psk) {
    const [first] = credentials.psk;
    // No certificate is involved: the key itself authenticates the receiver.
    return { ...base, pskCallback: () => ({ identity: first!.identity, psk: first!.key }), checkServerIdentity: () => undefined };
  }
  if (!credentials.ca) throw tlsError('ERR_TLS_CREDENTIALS', 'a TLS sender needs --tls-ca to verify the receiver (or --tls-psk-file)');
  const servername = credentials.hostname ?? host;
  // `host` is what the certificate must name; SNI (`servername`) cannot carry an IP address.
  return { ...base, ca: credentials.ca, cert: credentials.cert, key: credentials.key, rejectUnauthorized: true, host: servername, servername: isIP(servername) ? undefined : servername };
}

/**
 * Starts TLS as the client over a connected socket and resolves once the peer is verified.
 * @throws TransportError `ERR_TLS_HANDSHAKE` (wrong key, untrusted or misnamed certificate,
 * a peer that does not speak TLS), `ERR_TLS_CREDENTIALS`.
 */
export function startTlsClient(socket: Socket, credentials: TlsCredentials, host: string, endpoint: string, timeoutMs: number): Promise<TLSSocket> {
  const options = tlsClientOptions(credentials, host);
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({ ...options, socket });
    const fail = (why: string, cause?: unknown) => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      reject(tlsError('ERR_TLS_HANDSHAKE', `TLS handshake with ${endpoint} failed: ${why}`, cause, { endpoint }));
    };
    const timer = setTimeout(() => fail(`no answer within ${timeoutMs} ms`), timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => fail(error.code ?? error.message, error);
    secure.once('error', onError);
    secure.once('close', () => fail('the receiver closed the connection'));
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', onError);
      secure.removeAllListeners('close');
      resolve(secure);
    });
  });
}

/** A TLS server whose connections are handed on once secure; failed handshakes go to `onRefused`. */
export function createTlsServer(credentials: TlsCredentials, handshakeTimeoutMs: number, onSecure: (socket: TLSSocket) => void, onRefused: (error: TransportError) => void) {
  const server = createServer(tlsServerOptions(credentials, handshakeTimeoutMs), onSecure);
  server.on('tlsClientError', (error: NodeJS.ErrnoException) => {
    onRefused(tlsError('ERR_TLS_HANDSHAKE', `a peer failed the TLS handshake: ${error.code ?? error.message}`, error));
  });
  return server;
}

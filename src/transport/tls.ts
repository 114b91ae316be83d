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

/** Certificate checks that fail because the peer's certificate does not chain to our CA. */
const UNTRUSTED_CERTIFICATE = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
]);
/** What OpenSSL says when the bytes it reads are not TLS records. */
const NOT_TLS = new Set(['ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_HTTP_REQUEST', 'ERR_SSL_PACKET_LENGTH_TOO_LONG', 'ERR_SSL_UNKNOWN_PROTOCOL', 'ERR_SSL_RECORD_LAYER_FAILURE']);
const SAME_OPTIONS = 'give both ends the same --tls-* options';
const SAME_PSK = 'check that both ends use the same keys.psk';

/**
 * The sender's side of a failed TLS setup in words: what is wrong and what to check, from the
 * OpenSSL or certificate code (`ERR_SSL_…`, `UNABLE_TO_VERIFY_LEAF_SIGNATURE`, `ECONNRESET`, …)
 * and the sender's own credentials. Undefined for a code it has no words for. Exported so that
 * failures surfacing after the handshake (TLS 1.3 checks the client's certificate after the
 * client considers itself connected) read the same.
 */
export function describeSenderTlsFailure(code: string | undefined, credentials: TlsCredentials, servername: string): string | undefined {
  if (code === undefined) return undefined;
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_TLS_PEER_CLOSED') {
    return `the receiver closed the connection during the TLS handshake: it probably does not use TLS (${SAME_OPTIONS})`;
  }
  if (NOT_TLS.has(code)) return `the receiver does not answer in TLS (${SAME_OPTIONS})`;
  if (credentials.psk) {
    const identity = credentials.psk[0]!.identity;
    if (code === 'ERR_SSL_SSLV3_ALERT_ILLEGAL_PARAMETER' || code === 'ERR_SSL_TLSV1_ALERT_DECRYPT_ERROR') return `the pre-shared keys differ (${SAME_PSK})`;
    if (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE') {
      return `the receiver does not accept the pre-shared key identity "${identity}": it has no key by that name, or uses certificates instead (${SAME_PSK}, or ${SAME_OPTIONS})`;
    }
    if (UNTRUSTED_CERTIFICATE.has(code)) return `the receiver uses certificates but this sender a pre-shared key (${SAME_OPTIONS})`;
    return undefined;
  }
  if (UNTRUSTED_CERTIFICATE.has(code)) {
    return `the receiver's certificate is not signed by the CA in this sender's --tls-ca (${code}): check that --tls-ca is the CA that signed the receiver's --tls-cert`;
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return `the receiver's certificate does not carry the name "${servername}": connect by a name it carries, or give --tls-hostname NAME`;
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return `the receiver's certificate ${code === 'CERT_HAS_EXPIRED' ? 'has expired' : 'is not valid yet'}: check its dates and both hosts' clocks`;
  }
  if (code === 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE') return `the receiver refused the handshake: it probably uses a pre-shared key (--tls-psk-file) and this sender certificates (${SAME_OPTIONS})`;
  if (code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED') return 'the receiver requires a client certificate (it was given --tls-ca): give this sender --tls-cert and --tls-key';
  if (code === 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' || code === 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE') {
    return "the receiver does not trust this sender's certificate: --tls-cert must be signed by the CA in the receiver's --tls-ca";
  }
  return undefined;
}

/** The receiver's side of a failed TLS handshake in words; see {@link describeSenderTlsFailure}. */
function describeReceiverTlsFailure(error: NodeJS.ErrnoException, authorizationError: string | undefined, credentials: TlsCredentials, handshakeTimeoutMs: number): string {
  const code = error.code;
  if (authorizationError && !credentials.psk) {
    return `a sender's certificate is not signed by the CA in this receiver's --tls-ca (${authorizationError}): check which CA signed the sender's --tls-cert`;
  }
  if (code !== undefined && NOT_TLS.has(code)) return `a sender connected without TLS but this receiver uses TLS (${SAME_OPTIONS})`;
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return `a peer did not complete the TLS handshake within ${handshakeTimeoutMs} ms`;
  if (credentials.psk) {
    if (code === 'ERR_SSL_BINDER_DOES_NOT_VERIFY') return `a sender's pre-shared key differs from this receiver's (${SAME_PSK})`;
    if (code === 'ERR_SSL_NO_SUITABLE_SIGNATURE_ALGORITHM' || code === 'ERR_SSL_NO_SHARED_CIPHER') {
      return `a sender offered no pre-shared key this receiver knows: an identity missing from this receiver's keys.psk, or certificates instead of a key (${SAME_PSK})`;
    }
  } else {
    if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'a sender sent no client certificate, but this receiver requires one (it was given --tls-ca): give the sender --tls-cert and --tls-key';
    if (code === 'ECONNRESET' || code === 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' || code === 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE') {
      return (
        "a peer gave up the TLS handshake: a sender does so when it does not accept this receiver's certificate (check that its --tls-ca is the CA that " +
        `signed this receiver's --tls-cert, and that the certificate carries the name it connects to) or when it uses a pre-shared key (${SAME_OPTIONS})`
      );
    }
  }
  if (code === 'ECONNRESET') return 'a peer closed the connection during the TLS handshake';
  return `a peer failed the TLS handshake: ${code ?? error.message}`;
}

/**
 * Starts TLS as the client over a connected socket and resolves once the peer is verified.
 * @throws TransportError `ERR_TLS_HANDSHAKE` (wrong key, untrusted or misnamed certificate,
 * a peer that does not speak TLS), its message saying in words what is wrong and what to
 * check; `ERR_TLS_CREDENTIALS`.
 */
export function startTlsClient(socket: Socket, credentials: TlsCredentials, host: string, endpoint: string, timeoutMs: number): Promise<TLSSocket> {
  const options = tlsClientOptions(credentials, host);
  const servername = credentials.hostname ?? host;
  return new Promise((resolve, reject) => {
    const secure = tlsConnect({ ...options, socket });
    const fail = (code: string | undefined, fallback: string, cause?: unknown) => {
      clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      const why = describeSenderTlsFailure(code, credentials, servername) ?? fallback;
      reject(tlsError('ERR_TLS_HANDSHAKE', `TLS handshake with ${endpoint} failed: ${why}`, cause, { endpoint, reason: code }));
    };
    const timer = setTimeout(() => fail(undefined, `no answer within ${timeoutMs} ms`), timeoutMs);
    const onError = (error: NodeJS.ErrnoException) => fail(error.code, error.code ?? error.message, error);
    secure.once('error', onError);
    secure.once('close', () => fail('ERR_TLS_PEER_CLOSED', 'the receiver closed the connection'));
    secure.once('secureConnect', () => {
      clearTimeout(timer);
      secure.off('error', onError);
      secure.removeAllListeners('close');
      resolve(secure);
    });
  });
}

/**
 * A TLS server whose connections are handed on once secure; failed handshakes go to
 * `onRefused` as TransportError `ERR_TLS_HANDSHAKE` saying in words what is wrong.
 */
export function createTlsServer(credentials: TlsCredentials, handshakeTimeoutMs: number, onSecure: (socket: TLSSocket) => void, onRefused: (error: TransportError) => void) {
  const server = createServer(tlsServerOptions(credentials, handshakeTimeoutMs), onSecure);
  server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
    // A client certificate that does not verify is only noticed once OpenSSL is done: Node then
    // drops the connection without an error of its own ("socket hang up"), leaving the reason
    // in authorizationError.
    const authorizationError = socket.authorizationError ? String(socket.authorizationError) : undefined;
    const message = describeReceiverTlsFailure(error, authorizationError, credentials, handshakeTimeoutMs);
    onRefused(tlsError('ERR_TLS_HANDSHAKE', message, error, { reason: authorizationError ?? error.code }));
  });
  return server;
}

// Endpoints in QEMU's URI spelling: `tcp:HOST:PORT`, `unix:PATH`, `file:PATH`.
import { TransportError } from '../errors.js';

/** A TCP endpoint; `port` 0 asks `listen` for any free port. */
export interface TcpEndpoint {
  kind: 'tcp';
  host: string;
  port: number;
}

/** A unix-domain socket at a filesystem path. */
export interface UnixEndpoint {
  kind: 'unix';
  path: string;
}

/** A migration file (QEMU's migrate-to-file): channels multiplexed into one file. */
export interface FileEndpoint {
  kind: 'file';
  path: string;
}

/** Where to listen, connect, or write a migration to. */
export type Endpoint = TcpEndpoint | UnixEndpoint | FileEndpoint;

const USAGE = 'tcp:HOST:PORT, unix:PATH or file:PATH';

// A host name or an IPv4 address: letters, digits, dots, hyphens (and underscores, which
// some resolvers accept). Brackets and colons are what IPv6 would need, so they fail here.
const HOST = /^[A-Za-z0-9._-]+$/;

function endpointError(text: string, why: string): TransportError {
  return new TransportError('ERR_ENDPOINT', `invalid endpoint "${text}": ${why} (expected ${USAGE})`, {
    context: { endpoint: text },
  });
}

/**
 * Parses `tcp:HOST:PORT` (host name or IPv4 address, port 0–65535), `unix:PATH` or
 * `file:PATH`.
 * @throws TransportError `ERR_ENDPOINT` for anything else, IPv6 addresses included.
 */
export function parseEndpoint(text: string): Endpoint {
  const colon = text.indexOf(':');
  const scheme = colon < 0 ? '' : text.slice(0, colon);
  const rest = colon < 0 ? '' : text.slice(colon + 1);
  switch (scheme) {
    case 'unix':
    case 'file':
      if (rest.length === 0) throw endpointError(text, `${scheme}: needs a path`);
      if (rest.includes('\0')) throw endpointError(text, 'the path contains a NUL byte');
      return { kind: scheme, path: rest };
    case 'tcp': {
      if (rest.startsWith('[')) throw endpointError(text, 'IPv6 addresses are not supported');
      const last = rest.lastIndexOf(':');
      if (last < 0) throw endpointError(text, 'tcp: needs HOST:PORT');
      const host = rest.slice(0, last);
      const portText = rest.slice(last + 1);
      if (host.includes(':')) throw endpointError(text, 'IPv6 addresses are not supported');
      if (!HOST.test(host)) throw endpointError(text, `"${host}" is not a host name or IPv4 address`);
      const port = Number(portText);
      if (!/^\d{1,5}$/.test(portText) || port > 65535) throw endpointError(text, `"${portText}" is not a port from 0 to 65535`);
      return { kind: 'tcp', host, port };
    }
    default:
      throw endpointError(text, colon < 0 ? 'no scheme' : `unknown scheme "${scheme}"`);
  }
}

/** The text form of an endpoint, as {@link parseEndpoint} reads it. */
export function formatEndpoint(endpoint: Endpoint): string {
  return endpoint.kind === 'tcp' ? `tcp:${endpoint.host}:${endpoint.port}` : `${endpoint.kind}:${endpoint.path}`;
}

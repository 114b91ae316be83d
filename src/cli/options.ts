// Parsing of option values shared by the subcommands: integers in a range, sizes with
// QEMU-style suffixes, enumerations. Every mistake is a UsageError (exit status 2).
import { isIP } from 'node:net';
import type { AcceleratorOptions } from '../codecs/types.js';
import { MultifdError } from '../errors.js';
import { loadTlsCredentials, parseEndpoint, type Endpoint, type TlsCredentials } from '../transport/index.js';
import { UsageError, type OptionSpec } from './usage.js';

/** TLS flags shared by `send` and `receive` (QEMU's tls-creds, as files). */
export const TLS_OPTIONS: Record<string, OptionSpec> = {
  'tls-psk-file': { type: 'string', valueName: 'FILE', description: "TLS with a pre-shared key: lines IDENTITY:HEXKEY (QEMU's keys.psk)" },
  'tls-cert': { type: 'string', valueName: 'FILE', description: 'TLS certificate (PEM): required to receive with certificates; to send, a client certificate' },
  'tls-key': { type: 'string', valueName: 'FILE', description: 'private key of --tls-cert (PEM)' },
  'tls-ca': { type: 'string', valueName: 'FILE', description: "CA certificate(s) (PEM) the peer's certificate must chain to" },
  'tls-hostname': { type: 'string', valueName: 'NAME', description: "send: the name the receiver's certificate must carry (default: the host in --to)" },
};

/** The TLS credentials the flags name, or undefined without any TLS flag. */
export function tlsOption(values: Record<string, unknown>): Promise<TlsCredentials | undefined> {
  const text = (name: string) => (typeof values[name] === 'string' ? (values[name] as string) : undefined);
  return loadTlsCredentials({ pskFile: text('tls-psk-file'), certFile: text('tls-cert'), keyFile: text('tls-key'), caFile: text('tls-ca'), hostname: text('tls-hostname') });
}

/** An integer option within [min, max], or `fallback` when absent. */
export function integerOption(values: Record<string, unknown>, name: string, min: number, max: number, fallback?: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${String(raw)}"`);
  return value;
}

const SIZE_SUFFIXES: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };

/** A byte count with an optional k/m/g/t suffix (powers of 1024, as QEMU's size options), e.g. `128m`. */
export function sizeOption(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)([kmgt]?)i?b?$/i.exec(String(raw).trim());
  if (!match) throw new UsageError(`--${name} must be a byte count such as 1073741824, 512m or 1g, got "${String(raw)}"`);
  return Math.round(Number(match[1]) * SIZE_SUFFIXES[match[2]!.toLowerCase()]!);
}

/** `--hardware`, shared by `send` and `receive`: what a qatzip, qpl or uadk codec does without its accelerator. */
export const HARDWARE_OPTION: Record<string, OptionSpec> = {
  hardware: { type: 'string', valueName: 'POLICY', description: 'qatzip|qpl|uadk accelerator: prefer (default; software without one) or require' },
};

/** The codec's accelerator options from `--hardware` (its policy), or undefined when absent so MULTIFD_HARDWARE stays in force. */
export function acceleratorOption(values: Record<string, unknown>): AcceleratorOptions | undefined {
  return values.hardware === undefined ? undefined : { policy: choiceOption(values, 'hardware', ['prefer', 'require'] as const, 'prefer') };
}

/** One of `choices`, or `fallback` when absent. */
export function choiceOption<T extends string>(values: Record<string, unknown>, name: string, choices: readonly T[], fallback: T): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${String(raw)}"`);
  return raw as T;
}

/**
 * The endpoint of `--name`, which must be one of `kinds`. A malformed one is a usage error
 * (exit 2), as is a host that looks like an IPv4 address but is not one (`999.1.1.1` would
 * otherwise go to the resolver and fail later as a name that does not resolve).
 */
export function endpointOption<K extends Endpoint['kind']>(values: Record<string, unknown>, name: string, kinds: readonly K[], hint = ''): Extract<Endpoint, { kind: K }> {
  const text = String(values[name]);
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(text);
  } catch (error) {
    if (error instanceof MultifdError && error.code === 'ERR_ENDPOINT') throw new UsageError(`--${name}: ${error.message}`);
    throw error;
  }
  if (endpoint.kind === 'tcp' && /^[\d.]+$/.test(endpoint.host) && isIP(endpoint.host) !== 4) {
    throw new UsageError(`--${name}: "${endpoint.host}" is not an IPv4 address (four numbers from 0 to 255)`);
  }
  if (!(kinds as readonly string[]).includes(endpoint.kind)) {
    throw new UsageError(`--${name} takes ${kinds.map((k) => `${k}:`).join(' or ')}, not ${endpoint.kind}:${hint ? `; ${hint}` : ''}`);
  }
  return endpoint as Extract<Endpoint, { kind: K }>;
}

// Throwaway X.509 material for TLS tests, made with Debian's openssl CLI: two unrelated CAs,
// and for each a receiver certificate naming 127.0.0.1 and localhost and a client certificate.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM bytes of one authority's certificates and keys. */
export interface Authority {
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  clientCert: Buffer;
  clientKey: Buffer;
}

function openssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

function authority(dir: string, name: string): Authority {
  const key = (file: string) => openssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', file);
  key(`${name}-ca.key`);
  openssl(dir, 'req', '-x509', '-new', '-key', `${name}-ca.key`, '-subj', `/CN=${name} test CA`, '-days', '2', '-out', `${name}-ca.pem`);
  for (const [role, san] of [['server', 'IP:127.0.0.1,DNS:localhost'], ['client', 'DNS:multifd-sender']] as const) {
    key(`${name}-${role}.key`);
    openssl(dir, 'req', '-new', '-key', `${name}-${role}.key`, '-subj', `/CN=${name} ${role}`, '-out', `${name}-${role}.csr`);
    writeFileSync(join(dir, `${name}-${role}.ext`), `subjectAltName=${san}\n`);
    openssl(dir, 'x509', '-req', '-in', `${name}-${role}.csr`, '-CA', `${name}-ca.pem`, '-CAkey', `${name}-ca.key`, '-CAcreateserial', '-days', '2', '-extfile', `${name}-${role}.ext`, '-out', `${name}-${role}.pem`);
  }
  const read = (file: string) => readFileSync(join(dir, file));
  return {
    ca: read(`${name}-ca.pem`),
    serverCert: read(`${name}-server.pem`),
    serverKey: read(`${name}-server.key`),
    clientCert: read(`${name}-client.pem`),
    clientKey: read(`${name}-client.key`),
  };
}

/** Two independent authorities: certificates of one are untrusted by the other. */
export function makeAuthorities(): { trusted: Authority; other: Authority } {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-certs-'));
  try {
    return { trusted: authority(dir, 'trusted'), other: authority(dir, 'other') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

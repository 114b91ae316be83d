// The secret that lets a sender take its session back after losing every connection. The hello
// carries the sender's X25519 public key and the hello-ack the receiver's; each side combines
// its private key with the other's public one, and HKDF-SHA256 over that shared key, salted
// with the session id, gives both the same 32-byte secret. It never crosses the wire: a
// passive observer of the hello cannot compute it, so seeing the session id is not enough to
// resume. (An active man in the middle of the hello can swap the keys: only TLS stops that;
// docs/security.md says what each kind of attacker can do.)
//
// A resume carries HMAC-SHA256 under the secret over a label, the session id, the attempt
// number and the count of control messages received; the receiver answers with its own proof
// over the same attempt, so each side knows the other is the peer of the hello.
import { createHmac, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, timingSafeEqual, type KeyObject } from 'node:crypto';
import { protocolError } from '../errors.js';

/** What a resume proof covers besides the secret. */
export interface ResumeClaim {
  sessionId: Uint8Array;
  attempt: number;
  received: number;
}

/** Which side made a proof: a sender's proof cannot be replayed as a receiver's. */
export type ProofSide = 'resume' | 'resume-ack';

/** One side's key pair for a session, until the peer's public key is in. */
export class ResumeKeys {
  private readonly privateKey: KeyObject;
  /** The raw 32-byte public key, for the hello or the hello-ack. */
  readonly publicKey: Uint8Array;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('x25519');
    this.privateKey = privateKey;
    this.publicKey = new Uint8Array(Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'));
  }

  /**
   * The session's resume secret, from the peer's raw public key.
   * @throws ProtocolError `ERR_RESUME_KEY` for a key that gives no usable shared secret.
   */
  secret(peerPublicKey: Uint8Array, sessionId: Uint8Array): ResumeSecret {
    let shared: Buffer;
    try {
      const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: Buffer.from(peerPublicKey).toString('base64url') }, format: 'jwk' });
      shared = diffieHellman({ privateKey: this.privateKey, publicKey });
    } catch (error) {
      throw protocolError('ERR_RESUME_KEY', { channel: 'control', field: 'resumeKey', expected: 'an X25519 public key', got: (error as Error).message });
    }
    return new ResumeSecret(new Uint8Array(hkdfSync('sha256', shared, sessionId, 'multifd resume secret', 32)));
  }
}

/** The derived secret of one session: makes and checks resume proofs. */
export class ResumeSecret {
  constructor(private readonly key: Uint8Array) {}

  /** The proof of `side` for `claim`. */
  prove(side: ProofSide, claim: ResumeClaim): Uint8Array {
    const numbers = Buffer.alloc(12);
    numbers.writeUInt32BE(claim.attempt, 0);
    numbers.writeBigUInt64BE(BigInt(claim.received), 4);
    return new Uint8Array(createHmac('sha256', this.key).update(side).update(claim.sessionId).update(numbers).digest());
  }

  /** Whether `proof` is `side`'s proof for `claim` (compared in constant time). */
  verify(side: ProofSide, claim: ResumeClaim, proof: Uint8Array): boolean {
    const expected = this.prove(side, claim);
    return proof.byteLength === expected.byteLength && timingSafeEqual(proof, expected);
  }
}

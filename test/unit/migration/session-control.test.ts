// The pieces of a resume without sockets: the secret both sides derive from the keys of the
// hello and hello-ack, the proofs made with it, and a control session that carries on over a
// new connection, sending again what the peer did not read.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { ControlChannel } from '../../../src/migration/control-channel.js';
import { ResumeKeys } from '../../../src/migration/resume-secret.js';
import { SessionControl } from '../../../src/migration/session-control.js';
import { memoryPair } from '../../../src/transport/memory-pair.js';
import type { ControlMessage } from '../../../src/wire/index.js';

const secret = suite('resume secret');
const SESSION = new Uint8Array(16).fill(5);

secret('both sides derive the same secret; a proof verifies only for its own side, claim and secret', () => {
  const sender = new ResumeKeys();
  const receiver = new ResumeKeys();
  const senderSecret = sender.secret(receiver.publicKey, SESSION);
  const receiverSecret = receiver.secret(sender.publicKey, SESSION);
  const claim = { sessionId: SESSION, attempt: 2, received: 7 };
  const proof = senderSecret.prove('resume', claim);
  assert.ok(receiverSecret.verify('resume', claim, proof));
  assert.not.ok(receiverSecret.verify('resume-ack', claim, proof), 'a sender proof is no receiver proof');
  assert.not.ok(receiverSecret.verify('resume', { ...claim, attempt: 3 }, proof), 'another attempt');
  assert.not.ok(receiverSecret.verify('resume', { ...claim, received: 8 }, proof), 'another count');
  assert.not.ok(receiverSecret.verify('resume', { ...claim, sessionId: new Uint8Array(16) }, proof), 'another session');
  const stranger = new ResumeKeys().secret(receiver.publicKey, SESSION);
  assert.not.ok(receiverSecret.verify('resume', claim, stranger.prove('resume', claim)), 'a peer with its own key pair');
  assert.not.ok(receiverSecret.verify('resume', claim, proof.subarray(0, 31)), 'a short proof');
});

secret('a key that is not an X25519 public key is refused with a typed error', () => {
  const error = (() => {
    try {
      new ResumeKeys().secret(new Uint8Array(32), SESSION); // the all-zero point gives no shared secret
    } catch (e) {
      return e as { code?: string };
    }
    return undefined;
  })();
  assert.is(error?.code, 'ERR_RESUME_KEY');
});

const session = suite('session control');

/** A session control on one end of an in-memory connection, and a raw channel on the other. */
function connected(control?: SessionControl, lost: () => void = () => {}) {
  const [near, far] = memoryPair();
  const channel = new ControlChannel(near);
  return { session: control ?? new SessionControl(channel, lost), channel, peer: new ControlChannel(far) };
}

const roundEnd = (round: number): ControlMessage => ({ type: 'round-end', round, packets: round });

session('after a resume, the messages the peer did not read go again, in order, before new ones', async () => {
  const first = connected();
  first.session.startNumbering();
  for (let round = 1; round <= 3; round++) await first.session.send(roundEnd(round));
  assert.equal(await first.peer.next(1000), roundEnd(1)); // the peer read one before the cut
  const second = connected(first.session);
  first.session.replace(second.channel, 1);
  assert.ok(first.channel.socket.destroyed, 'the old connection is dropped');
  await first.session.send(roundEnd(4));
  const got = [await second.peer.next(1000), await second.peer.next(1000), await second.peer.next(1000)];
  assert.equal(got, [roundEnd(2), roundEnd(3), roundEnd(4)]);
  assert.is(first.session.sent, 4);
  second.peer.socket.destroy();
});

session('a reader waiting when the connection is lost gets the next message from the resumed one', async () => {
  let losses = 0;
  const first = connected(undefined, () => losses++);
  first.session.startNumbering();
  const reading = first.session.next();
  first.peer.socket.destroy();
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.is(losses, 1, 'the owner is told of the loss');
  const second = connected(first.session);
  first.session.replace(second.channel, 0);
  await second.peer.send({ type: 'complete', rounds: 1, checksum: 9n });
  assert.equal(await reading, { type: 'complete', rounds: 1, checksum: 9n });
  assert.is(first.session.received, 1);
  second.peer.socket.destroy();
});

session('a resume claiming more messages than were sent is refused, and confirmed ones are not kept', async () => {
  const first = connected();
  first.session.startNumbering();
  await first.session.send(roundEnd(1));
  await first.session.send(roundEnd(2));
  first.session.confirm(1);
  const second = connected(first.session);
  assert.throws(() => first.session.replace(second.channel, 3), (e: { code?: string }) => e.code === 'ERR_RESUME_COUNT');
  assert.throws(() => first.session.replace(second.channel, 0), (e: { code?: string }) => e.code === 'ERR_RESUME_COUNT');
  first.session.replace(second.channel, 1);
  assert.equal(await second.peer.next(1000), roundEnd(2));
  second.peer.socket.destroy();
});

session('a session that cannot be resumed fails its reader when the connection is lost', async () => {
  const first = connected();
  const reading = first.session.next();
  first.peer.socket.destroy();
  const error = await reading.catch((e: { code?: string }) => e);
  assert.is((error as { code?: string }).code, 'ERR_CONTROL_CLOSED');
});

secret.run();
session.run();

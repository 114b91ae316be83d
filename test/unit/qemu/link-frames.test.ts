// The link's frames (src/qemu/link-frames.ts): sealed by XXH64 over the header and the body,
// but for a packet frame only over its fields, whose multifd packets seal themselves.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { ProtocolError } from '../../../src/errors.js';
import { encodeLinkFrame, encodePacketFrame, LINK_HEADER_BYTES, LinkFrame, LinkFrameReader, type LinkFrameItem } from '../../../src/qemu/link-frames.js';
import { concat } from './fake-qemu.js';

const test = suite('link frames');

function readAll(bytes: Uint8Array, chunk = bytes.byteLength): LinkFrameItem[] {
  const reader = new LinkFrameReader('data 0');
  const items: LinkFrameItem[] = [];
  for (let at = 0; at < bytes.byteLength; at += chunk) {
    reader.push(bytes.subarray(at, at + chunk));
    for (let item = reader.next(); item; item = reader.next()) items.push(item);
  }
  reader.end();
  return items;
}

function refused(bytes: Uint8Array, code: string, field: string): void {
  try {
    readAll(bytes);
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.is((error as ProtocolError).code, code, (error as Error).message);
    assert.ok((error as Error).message.includes(field), (error as Error).message);
    return;
  }
  assert.unreachable(`refused with ${code}`);
}

const fields = Uint8Array.from({ length: 40 }, (_, i) => i + 1);
const tail = [Uint8Array.from({ length: 300 }, (_, i) => i & 0xff), Uint8Array.from({ length: 5 }, () => 9)];

test('a control frame and a packet frame read back, fed at once or a byte at a time; the packet frame is written as the head and the tail views', () => {
  const control = encodeLinkFrame(LinkFrame.credit, Uint8Array.of(1, 0, 0, 0, 7));
  const packet = encodePacketFrame(fields, tail);
  assert.is(packet.length, 3, 'head, then the tail parts as given');
  assert.ok(packet[1] === tail[0] && packet[2] === tail[1], 'the tail is not copied');
  assert.is(packet[0]!.byteLength, LINK_HEADER_BYTES + fields.byteLength);
  for (const chunk of [1, 7, 100_000]) {
    const items = readAll(concat([control, ...packet]), chunk);
    assert.equal(items.map((i) => [i.type, i.sealed, i.body.byteLength]), [[LinkFrame.credit, 5, 5], [LinkFrame.packet, 40, 345]]);
    assert.equal([...items[1]!.body], [...concat([fields, ...tail])]);
  }
});

test('a changed byte in the header, a control body or a packet frame\'s fields fails the checksum; one in its tail is left to the multifd packets\' own checksums', () => {
  const packet = concat(encodePacketFrame(fields, tail));
  for (const at of [LINK_HEADER_BYTES - 1, LINK_HEADER_BYTES + 10]) {
    const bad = packet.slice();
    bad[at]! ^= 1;
    refused(bad, 'ERR_LINK_CHECKSUM', 'checksum');
  }
  const control = encodeLinkFrame(LinkFrame.main, Uint8Array.of(1, 2, 3));
  control[LINK_HEADER_BYTES + 2]! ^= 0x80;
  refused(control, 'ERR_LINK_CHECKSUM', 'checksum');
  const tailChanged = packet.slice();
  tailChanged[LINK_HEADER_BYTES + fields.byteLength + 3]! ^= 1;
  assert.is(readAll(tailChanged).length, 1);
});

test('the sealed length is refused on a frame other than a packet, and on a packet frame as 0 or past its body', () => {
  const withSealed = (frame: Uint8Array, sealed: number) => {
    const bytes = frame.slice();
    new DataView(bytes.buffer).setUint16(6, sealed);
    return bytes;
  };
  refused(withSealed(encodeLinkFrame(LinkFrame.main, Uint8Array.of(1, 2, 3)), 2), 'ERR_LINK_FIELD', 'main sealed');
  const packet = concat(encodePacketFrame(fields, tail));
  refused(withSealed(packet, 0), 'ERR_LINK_FIELD', 'packet sealed');
  refused(withSealed(packet, 40 + 345 + 1), 'ERR_LINK_FIELD', 'packet sealed');
});

test('magic, version, type and length are checked as the header arrives, and a stream cut inside a frame is truncated', () => {
  const frame = encodeLinkFrame(LinkFrame.bye);
  const patched = (at: number, value: number) => {
    const bytes = frame.slice();
    bytes[at] = value;
    return bytes;
  };
  refused(patched(0, 0x4e), 'ERR_LINK_MAGIC', 'magic');
  refused(patched(4, 1), 'ERR_LINK_VERSION', 'version');
  refused(patched(5, 99), 'ERR_LINK_TYPE', 'type');
  refused(patched(8, 0xff), 'ERR_LINK_LENGTH', 'length');
  refused(concat(encodePacketFrame(fields, tail)).subarray(0, 100), 'ERR_LINK_TRUNCATED', 'frame');
});

test.run();

// Worker-safe instances: one module instance per thread, a scratch area sized once, and no
// growth across thousands of packets, failed decodes included.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec, listCodecs } from '../../../src/codecs/registry.js';
import { CodecError } from '../../../src/errors.js';
import { cModule, cModuleMemoryBytes } from '../../../src/wasm/c-module.js';
import { blankPages, makePages } from '../../helpers/pages.js';

const test = suite('codec instances and memory');
const PAGE = 4096;
const PACKETS = 3000;

for (const { id } of listCodecs()) {
  test(`${id}: ${PACKETS} packets, one in ten corrupt, leave the module memory as it was after warm-up`, () => {
    const codec = getCodec(id);
    const encoder = codec.createEncoder({ pageSize: PAGE, maxPages: 16 });
    const decoder = codec.createDecoder({ pageSize: PAGE, maxPages: 16 });
    const variants = [makePages('mixed', 16, PAGE, 1), makePages('text', 16, PAGE, 2), makePages('random', 16, PAGE, 3)];
    const out = new Uint8Array(encoder.payloadBound(16));
    const destination = blankPages(16, PAGE);
    const cycle = (i: number) => {
      const length = encoder.encode(variants[i % 3]!, out);
      const payload = out.subarray(0, length);
      if (i % 10 === 9) {
        let refusal: unknown;
        try {
          decoder.decode(payload.subarray(0, length >> 1), destination);
        } catch (error) {
          refusal = error;
        }
        // Refused with the codec's typed error; what this test is about is that nothing leaked.
        assert.instance(refusal, CodecError, `${id}: half a payload was not refused with a CodecError: ${String(refusal)}`);
      } else {
        decoder.decode(payload, destination);
      }
    };
    for (let i = 0; i < 100; i++) cycle(i);
    const before = cModuleMemoryBytes();
    for (let i = 0; i < PACKETS; i++) cycle(i);
    assert.equal(cModuleMemoryBytes(), before);
  });
}

test('encoders of one thread share one instance per module, its scratch sized once', () => {
  getCodec('zstd').createEncoder({ pageSize: PAGE, maxPages: 8 });
  const instance = cModule('zstd');
  const bytes = instance.exports.memory.buffer.byteLength;
  for (let i = 0; i < 20; i++) getCodec('zstd').createEncoder({ pageSize: PAGE, maxPages: 8, level: 1 + (i % 5) });
  assert.is(cModule('zstd'), instance);
  assert.is(instance.exports.memory.buffer.byteLength, bytes);
});

test.run();

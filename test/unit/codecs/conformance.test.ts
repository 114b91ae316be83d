// Every registered codec passes the same suite (test/helpers/codec-conformance.ts).
import { listCodecs, getCodec } from '../../../src/codecs/registry.js';
import { conformance } from '../../helpers/codec-conformance.js';

for (const { id } of listCodecs()) conformance(getCodec(id));

// The public surface of multifd. Everything exported here is documented at its definition.
export { CodecError, MultifdError, deserializeError, type SerializedError } from './errors.js';
export { DEFAULT_PAGE_SIZE, PACKET_BYTES, checkPageSize } from './pages.js';
export type {
  BackendStatus,
  Codec,
  CodecId,
  CodecInfo,
  CodecOptions,
  LevelRange,
  PacketDecoder,
  PacketEncoder,
} from './codecs/types.js';
export { codecByWireId, getCodec, listCodecs, registerCodec } from './codecs/registry.js';
export { countLeadingZeroPages, scanZeroPages } from './zero/scan.js';
export { hashBytes, hashPages } from './wasm/kernels.js';
export { wasmVariant, type WasmVariant } from './wasm/load.js';

// The public surface of multifd. Everything exported here is documented at its definition.
export { CodecError, MultifdError, ProtocolError, TransportError, deserializeError, type ErrorContext, type SerializedError } from './errors.js';
export { DEFAULT_PAGE_SIZE, PACKET_BYTES, checkPageSize } from './pages.js';
export type {
  BackendStatus,
  Codec,
  CodecId,
  CodecInfo,
  AcceleratorOptions,
  CodecOptions,
  HardwarePolicy,
  LevelRange,
  PacketDecoder,
  PacketEncoder,
} from './codecs/types.js';
export { codecByWireId, getCodec, listCodecs } from './codecs/registry.js';
export { probeHardware, type HardwareProbe, type HardwareVendor } from './native/addon.js';
export { countLeadingZeroPages, scanZeroPages } from './wasm/zero-scan.js';
export { hashBytes, hashPages, xxh3Bytes, xxh3Pages } from './wasm/kernels.js';
export { wasmVariant, type WasmVariant } from './wasm/load.js';
export { GuestMemory, imageChecksum, openImageSource, type GuestMemoryOptions, type RamBlock } from './memory/index.js';
export { migrate, type LiveOptions, type MigrateOptions } from './migration/sender.js';
export { MigrationControl } from './migration/migration-control.js';
export type { ConvergenceOptions } from './migration/convergence.js';
export { ExplicitDirtyLog, HashDirtyLog, TraceDirtyLog, traceFromSnapshots, type DirtyBitmaps, type DirtyLog, type Trace } from './migration/dirty/index.js';
export { startGuest, type Guest, type GuestMode, type GuestOptions } from './workload/index.js';
export { MigrationReceiver, type ReceiveOptions, type ReceiveResult } from './migration/receiver.js';
export { listen, type Listening } from './migration/listen.js';
export { receiveFile, type ReceivingFile } from './migration/receive-file.js';
export { fileDestination, memoryDestination, type Destination, type DestinationFactory } from './migration/destination.js';
export { guestMemorySource, type PageSource, type SourceWindow } from './migration/source.js';
export type { MigrationStats, MigrationStatus } from './migration/stats.js';
export { WorkerPool, type PoolOptions } from './pool/pool.js';
export type { ZeroPageDetection } from './wire/index.js';
export { connect, FileMuxReader, FileMuxWriter, memoryPair, parseEndpoint, type Endpoint } from './transport/index.js';
export { proxyFromQemu, type ProxyFromQemuOptions } from './qemu/proxy-source.js';
export { proxyToQemu, type ProxyToQemuOptions } from './qemu/proxy-destination.js';
export type { ProxyHandle, ProxySide, ProxyStats } from './qemu/proxy-common.js';

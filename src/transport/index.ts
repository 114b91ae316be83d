// Connections: endpoints, TCP and unix sockets, migration files, in-memory pairs, rate limit.
export { formatEndpoint, parseEndpoint, type Endpoint, type FileEndpoint, type TcpEndpoint, type UnixEndpoint } from './endpoint.js';
export { DEFAULT_CONNECT_TIMEOUT_MS, connect, isLoopbackPeer, listen, type ConnectOptions, type ListenOptions, type Listener } from './socket.js';
export { drained, writeWithBackpressure } from './backpressure.js';
export { loadTlsCredentials, parsePskFile, type PreSharedKey, type TlsCredentials } from './tls.js';
export { FileMuxWriter, MAX_FILE_CHANNELS, MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from './file-mux-writer.js';
export { FileMuxReader, type FileMuxReaderOptions } from './file-mux-reader.js';
export { memoryPair, type MemoryPairOptions } from './memory-pair.js';
export { TokenBucket, type TokenBucketOptions } from './token-bucket.js';

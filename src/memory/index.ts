// Guest memory, the image checksum and memory images on disk.
export {
  DEFAULT_BLOCK_BYTES,
  GuestMemory,
  MAX_BLOCK_BYTES,
  MAX_BLOCK_NAME_BYTES,
  WASM_PAGE_BYTES,
  type GuestMemoryBlocksOptions,
  type GuestMemoryDescriptor,
  type GuestMemoryOptions,
  type GuestMemorySizeOptions,
  type RamBlock,
  type RamBlockSpec,
} from './guest-memory.js';
export {
  CHECKSUM_CHUNK_BYTES,
  checksumChunkCount,
  chunkChecksums,
  chunkChecksumsOf,
  combineChecksums,
  imageChecksum,
} from './checksum.js';
export {
  DEFAULT_RING_SIZE,
  DEFAULT_WINDOW_BYTES,
  MAX_RING_SIZE,
  fileChecksum,
  fileChunkChecksums,
  readFileWindows,
  type FileInput,
  type FileRange,
  type FileWindow,
  type WindowOptions,
} from './file-windows.js';
export { openImageSource, type ImageBlockInfo, type ImageSource, type ImageSourceOptions, type ImageWindow } from './image-source.js';
export { createImageSink, writeAllAt, type ImageSink, type ImageSinkOptions } from './image-sink.js';

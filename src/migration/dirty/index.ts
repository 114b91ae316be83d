// Dirty logs for live pre-copy: one interface, three sources (explicit marks, page hashes, a
// recorded trace), and the bitmap helpers the sender needs to turn a sync into page runs.
export { bitmapRuns, bitmapWords, countDirty, type DirtyBitmaps, type DirtyLog } from './dirty-log.js';
export { ExplicitDirtyLog, attachExplicitDirtyLog, type SharedDirtyBitmaps } from './explicit-log.js';
export { HASH_RANGE_BYTES, HashDirtyLog, diffPageHashes, type HashDirtyLogOptions, type HashRangeRunner } from './hash-log.js';
export { TraceDirtyLog, traceFromSnapshots, type SnapshotTraceOptions, type Trace, type TraceStep } from './trace-log.js';

// Guest RAM as named blocks, each one shared WebAssembly.Memory. Sharing is the point: every
// worker thread reads source pages and writes destination pages in place, and the WASM
// kernels import a block's memory directly, so neither scanning nor hashing copies a byte.
import { outOfRange } from '../errors.js';
import { adviseHugePages } from '../native/addon.js';
import { DEFAULT_PAGE_SIZE, checkPageSize } from '../pages.js';

/** Bytes of one WebAssembly memory page (the unit memories are sized in, not the guest's). */
export const WASM_PAGE_BYTES = 65536;

/**
 * Largest RAM block: 4 GiB − 64 KiB (65535 WebAssembly pages).
 *
 * Node 20 (V8 11.3) accepts shared memories of up to 65536 pages, exactly 4 GiB, and maps
 * them lazily. We stop one page short so that the end of any byte range in a block
 * (`offset + length`) still fits in a wasm32 address: the kernels take `usize` pointers and
 * lengths, and a range ending at 2^32 would wrap to 0. Larger guests use several blocks.
 */
export const MAX_BLOCK_BYTES = 65535 * WASM_PAGE_BYTES;

/**
 * Default block size when {@link GuestMemory.create} splits one large memory: 2 GiB, so every
 * byte offset in a block is below 2^31 and stays a positive int32 on both sides of the JS/WASM
 * boundary.
 */
export const DEFAULT_BLOCK_BYTES = 2 ** 31;

/** Longest block name in UTF-8 bytes: QEMU's RAMBlock idstr holds 256 bytes with the NUL. */
export const MAX_BLOCK_NAME_BYTES = 255;

/** One RAM block: a named range of guest memory backed by its own shared memory. */
export interface RamBlock {
  /** The block's name, e.g. `pc.ram`; unique within its GuestMemory. */
  readonly name: string;
  /** Bytes of guest memory in the block, a multiple of the page size. */
  readonly byteLength: number;
  /** `byteLength / pageSize`. */
  readonly pageCount: number;
  /**
   * The backing shared memory; its buffer may be longer than `byteLength` (it is sized in
   * 64 KiB WebAssembly pages). Guest byte `i` of the block is byte `i` of the memory.
   */
  readonly memory: WebAssembly.Memory;
  /** A view of the block's bytes, `[0, byteLength)` of its memory. */
  bytes(): Uint8Array;
  /** A view of page `index` (`0 <= index < pageCount`). */
  page(index: number): Uint8Array;
}

/** Name and size of a block to create. */
export interface RamBlockSpec {
  name: string;
  byteLength: number;
}

/** Options of {@link GuestMemory.create} with an explicit block table. */
export interface GuestMemoryBlocksOptions {
  /** Page size in bytes: a power of two from 4 KiB to 64 KiB; default 4096. */
  pageSize?: number;
  blocks: readonly RamBlockSpec[];
}

/** Options of {@link GuestMemory.create} for one memory split into `pc.ram`, `pc.ram.1`, … */
export interface GuestMemorySizeOptions {
  /** Page size in bytes: a power of two from 4 KiB to 64 KiB; default 4096. */
  pageSize?: number;
  /** Total bytes, a positive multiple of the page size. */
  byteLength: number;
  /** Largest block, a multiple of the page size up to {@link MAX_BLOCK_BYTES}; default 2 GiB. */
  blockBytes?: number;
}

/** Either form of {@link GuestMemory.create}'s options. */
export type GuestMemoryOptions = GuestMemoryBlocksOptions | GuestMemorySizeOptions;

/**
 * A GuestMemory as plain data: structured-clonable, so it can be posted to a worker thread
 * (or passed in `workerData`), where {@link GuestMemory.fromDescriptor} rebuilds it over the
 * very same bytes. Shared memories are shared by postMessage, never copied.
 */
export interface GuestMemoryDescriptor {
  pageSize: number;
  blocks: { name: string; byteLength: number; memory: WebAssembly.Memory }[];
}

class SharedRamBlock implements RamBlock {
  readonly pageCount: number;
  // Shared memories never shrink and our blocks never grow, so one view stays valid for good.
  private readonly view: Uint8Array;

  constructor(
    readonly name: string,
    readonly byteLength: number,
    readonly memory: WebAssembly.Memory,
    private readonly pageSize: number,
  ) {
    this.pageCount = byteLength / pageSize;
    this.view = new Uint8Array(memory.buffer, 0, byteLength);
  }

  bytes(): Uint8Array {
    return this.view;
  }

  page(index: number): Uint8Array {
    if (!Number.isInteger(index) || index < 0 || index >= this.pageCount) {
      throw outOfRange('index', `an integer from 0 to ${this.pageCount - 1} (block ${this.name})`, index);
    }
    return this.view.subarray(index * this.pageSize, (index + 1) * this.pageSize);
  }
}

function checkBlockSpec(spec: RamBlockSpec, pageSize: number, at: number, seen: Set<string>): void {
  const { name, byteLength } = spec;
  if (typeof name !== 'string' || name.length === 0 || Buffer.byteLength(name) > MAX_BLOCK_NAME_BYTES) {
    throw outOfRange(`blocks[${at}].name`, `a non-empty string of at most ${MAX_BLOCK_NAME_BYTES} UTF-8 bytes`, name);
  }
  if (seen.has(name)) throw outOfRange(`blocks[${at}].name`, 'unique among the blocks', name);
  seen.add(name);
  if (!Number.isInteger(byteLength) || byteLength <= 0 || byteLength % pageSize !== 0 || byteLength > MAX_BLOCK_BYTES) {
    throw outOfRange(
      `blocks[${at}].byteLength`,
      `a positive multiple of the page size ${pageSize} up to ${MAX_BLOCK_BYTES} (4 GiB - 64 KiB)`,
      byteLength,
    );
  }
}

function splitIntoBlocks(options: GuestMemorySizeOptions, pageSize: number): RamBlockSpec[] {
  const { byteLength, blockBytes = DEFAULT_BLOCK_BYTES } = options;
  if (!Number.isSafeInteger(byteLength) || byteLength <= 0 || byteLength % pageSize !== 0) {
    throw outOfRange('byteLength', `a positive multiple of the page size ${pageSize}`, byteLength);
  }
  if (!Number.isInteger(blockBytes) || blockBytes <= 0 || blockBytes % pageSize !== 0 || blockBytes > MAX_BLOCK_BYTES) {
    throw outOfRange('blockBytes', `a positive multiple of the page size ${pageSize} up to ${MAX_BLOCK_BYTES}`, blockBytes);
  }
  const blocks: RamBlockSpec[] = [];
  for (let offset = 0; offset < byteLength; offset += blockBytes) {
    const index = blocks.length;
    blocks.push({ name: index === 0 ? 'pc.ram' : `pc.ram.${index}`, byteLength: Math.min(blockBytes, byteLength - offset) });
  }
  return blocks;
}

function isSharedMemory(memory: unknown): memory is WebAssembly.Memory {
  return memory instanceof WebAssembly.Memory && memory.buffer instanceof SharedArrayBuffer;
}

/** Guest RAM: an ordered table of {@link RamBlock}s with one page size. */
export class GuestMemory {
  /** Page size in bytes. */
  readonly pageSize: number;
  /** The blocks, in table order (the order the wire format numbers them). */
  readonly blocks: readonly RamBlock[];
  /** Sum of the blocks' byte lengths. */
  readonly totalBytes: number;
  /** Sum of the blocks' page counts. */
  readonly totalPages: number;
  private readonly indexByName: Map<string, number>;

  private constructor(pageSize: number, blocks: RamBlock[]) {
    this.pageSize = pageSize;
    this.blocks = Object.freeze(blocks);
    this.totalBytes = blocks.reduce((sum, b) => sum + b.byteLength, 0);
    this.totalPages = this.totalBytes / pageSize;
    this.indexByName = new Map(blocks.map((b, i) => [b.name, i]));
  }

  /**
   * Allocates guest memory: one shared WebAssembly.Memory per block, with initial = maximum =
   * the block's size in 64 KiB pages (rounded up), so a block never grows and views of it stay
   * valid. Fresh memory reads as zero and costs no RAM until touched: the engine maps it
   * lazily, so a 16 GiB memory that is never written uses almost nothing (and also flatters
   * any scan: write memory before measuring it). When the native shim is built, the blocks
   * ask for transparent huge pages (madvise, as QEMU does for guest RAM): first touches then
   * cost several times less, and a touched byte maps 2 MiB instead of 4 KiB.
   *
   * Either give the block table (`{ pageSize, blocks: [{ name, byteLength }] }`) or one size
   * (`{ pageSize, byteLength, blockBytes }`), which is split into blocks named `pc.ram`,
   * `pc.ram.1`, … of at most `blockBytes` (default 2 GiB).
   * @throws RangeError (`ERR_OUT_OF_RANGE`) for a bad page size, an empty table, an empty,
   * over-long or duplicate name, or a size that is not a positive multiple of the page size
   * up to {@link MAX_BLOCK_BYTES}.
   */
  static create(options: GuestMemoryOptions): GuestMemory {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    checkPageSize(pageSize);
    const specs = 'blocks' in options ? options.blocks : splitIntoBlocks(options, pageSize);
    if (specs.length === 0) throw outOfRange('blocks.length', 'at least 1', 0);
    const seen = new Set<string>();
    specs.forEach((spec, at) => checkBlockSpec(spec, pageSize, at, seen));
    return new GuestMemory(
      pageSize,
      specs.map(({ name, byteLength }) => {
        const pages = Math.ceil(byteLength / WASM_PAGE_BYTES);
        const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
        adviseHugePages(new Uint8Array(memory.buffer));
        return new SharedRamBlock(name, byteLength, memory, pageSize);
      }),
    );
  }

  /**
   * Rebuilds a GuestMemory from {@link GuestMemory.describe}'s output, typically in a worker
   * thread; the result reads and writes the same bytes as the original.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) when the descriptor is malformed or a memory is not
   * shared or is shorter than its block.
   */
  static fromDescriptor(descriptor: GuestMemoryDescriptor): GuestMemory {
    const { pageSize, blocks } = descriptor;
    checkPageSize(pageSize);
    if (blocks.length === 0) throw outOfRange('blocks.length', 'at least 1', 0);
    const seen = new Set<string>();
    return new GuestMemory(
      pageSize,
      blocks.map((block, at) => {
        checkBlockSpec(block, pageSize, at, seen);
        if (!isSharedMemory(block.memory) || block.memory.buffer.byteLength < block.byteLength) {
          throw outOfRange(`blocks[${at}].memory`, `a shared WebAssembly.Memory of at least ${block.byteLength} bytes`, block.memory);
        }
        return new SharedRamBlock(block.name, block.byteLength, block.memory, pageSize);
      }),
    );
  }

  /** Plain-data form for worker threads; see {@link GuestMemoryDescriptor}. */
  describe(): GuestMemoryDescriptor {
    return {
      pageSize: this.pageSize,
      blocks: this.blocks.map(({ name, byteLength, memory }) => ({ name, byteLength, memory })),
    };
  }

  /** Index of the block called `name` in {@link GuestMemory.blocks}, or -1 when there is none. */
  blockIndex(name: string): number {
    return this.indexByName.get(name) ?? -1;
  }
}

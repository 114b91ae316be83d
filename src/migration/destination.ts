// Where a receiver puts pages: a GuestMemory it creates from the sender's block table, or an
// image file written in place under a temporary name until the checksum is confirmed.
import { createImageSink } from '../memory/image-sink.js';
import { GuestMemory } from '../memory/guest-memory.js';
import type { BlockTarget } from '../pool/protocol.js';
import type { ControlMessage } from '../wire/index.js';

/** The sender's hello, which fixes the page size and the block table. */
export type Hello = Extract<ControlMessage, { type: 'hello' }>;

/** A receiver's destination for one migration. */
export interface Destination {
  /**
   * One write target per RAM block, in the hello's order. Targets start all zero (fresh memory,
   * a new sparse file): zero pages never written are left alone, as QEMU's receive bitmap
   * does. A target is only written, never read back: the image checksum comes from the hashes
   * the workers checked each packet with.
   */
  readonly targets: readonly BlockTarget[];
  /** Called once the checksum is confirmed: the image becomes complete. */
  complete(): Promise<void>;
  /** Called on failure: nothing may look like a complete image afterwards. */
  abort(): Promise<void>;
}

/** Builds the destination once the hello is known. */
export type DestinationFactory = (hello: Hello) => Promise<Destination>;

/** Pages go into a new GuestMemory shaped like the sender's; `onMemory` receives it. */
export function memoryDestination(onMemory?: (memory: GuestMemory) => void): DestinationFactory {
  return async (hello) => {
    const memory = GuestMemory.create({ pageSize: hello.pageSize, blocks: hello.blocks });
    onMemory?.(memory);
    return {
      targets: memory.blocks.map((b) => ({ memory: b.memory })),
      async complete() {},
      async abort() {},
    };
  };
}

/**
 * Pages go into an image file at `path`: the blocks one after another. The file is written as
 * `path.partial` and renamed to `path` only after the checksum matched, so a failed or cut
 * migration never leaves a file that looks complete.
 */
export function fileDestination(path: string): DestinationFactory {
  return async (hello) => {
    const byteLength = hello.blocks.reduce((n, b) => n + b.byteLength, 0);
    const sink = await createImageSink(path, { pageSize: hello.pageSize, byteLength });
    let offset = 0;
    const targets = hello.blocks.map((b) => {
      const target = { fd: sink.fd, byteOffset: offset };
      offset += b.byteLength;
      return target;
    });
    return {
      targets,
      complete: () => sink.complete(),
      abort: () => sink.abort(),
    };
  };
}

/** A destination factory whose product its caller can still reach; see {@link trackDestination}. */
export interface TrackedDestination {
  /** The factory to give the receiver. */
  factory: DestinationFactory;
  /**
   * With `holdCompletion`: completes the destination the receiver marked complete (names the
   * image file). Rejects if none was built.
   */
  complete(): Promise<void>;
  /** Aborts the destination, waiting for one still being built; harmless if none was or it is aborted already. */
  abort(): Promise<void>;
}

/**
 * Wraps a factory so that whoever awaits the receiver can still reach its destination:
 * - A receiver aborts the destination it holds; one still being built when the migration
 *   failed (an image file being created while a broken stream fails the control channel) lands
 *   after that cleanup and would be left behind as a `.partial` file. `abort()` waits for such
 *   a build and aborts what it made (aborting twice is harmless).
 * - With `holdCompletion`, the receiver's complete() only marks the destination ready and
 *   `complete()` here does the real thing, for a caller that has more to check first (a
 *   stream file must also end well after the checksum was confirmed).
 */
export function trackDestination(factory: DestinationFactory, options: { holdCompletion?: boolean } = {}): TrackedDestination {
  let building: Promise<Destination> | undefined;
  const held = (d: Destination): Destination => ({
    targets: d.targets,
    complete: async () => {},
    abort: () => d.abort(),
  });
  return {
    factory: (hello) => {
      building = factory(hello);
      return options.holdCompletion ? building.then(held) : building;
    },
    async complete() {
      if (!building) throw new Error('no destination was built');
      await (await building).complete();
    },
    async abort() {
      const destination = await building?.catch(() => undefined);
      await destination?.abort();
    },
  };
}

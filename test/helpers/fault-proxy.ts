// A TCP forwarder on 127.0.0.1 that can fail the way networks do, for the outage tests of
// issue 15: every connection through it reset at once (as `ss -K` does), new connections
// refused for a while, or everything held silently (a link that drops packets without a
// reset: TCP retransmits, so nothing is lost, it only stops moving until the outage ends; a
// connection one end closes meanwhile is closed at the other only then).
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

/** One client connection and its upstream one. */
interface Pair {
  client: Socket;
  upstream: Socket;
}

/** See the file comment. */
export interface FaultProxy {
  /** `tcp:127.0.0.1:PORT`: connect here instead of the target. */
  endpoint: string;
  /** Connections accepted so far, refused ones included. */
  readonly accepted: number;
  /** Resets every connection now (both ends see ECONNRESET). */
  resetAll(): void;
  /** Resets every connection and refuses new ones for `ms`. */
  resetOutage(ms: number): Promise<void>;
  /** Moves no byte for `ms` on any connection, and holds new ones until then; nothing is lost. */
  silentOutage(ms: number): Promise<void>;
  /** Resets every connection and stops listening. */
  close(): Promise<void>;
}

/** Forwards connections on a free port of 127.0.0.1 to `targetPort` there. */
export async function faultProxy(targetPort: number): Promise<FaultProxy> {
  const pairs = new Set<Pair>();
  let accepted = 0;
  let refusing = false;
  let held: Promise<void> | undefined;
  const forward = (client: Socket) => forwardPair(client, targetPort, pairs, () => held);
  const server = createServer({ noDelay: true }, (client) => {
    accepted++;
    client.on('error', () => {});
    if (refusing) return void client.resetAndDestroy();
    if (held) void held.then(() => (client.destroyed ? undefined : forward(client)));
    else forward(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const resetAll = () => {
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    pairs.clear();
  };
  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
  return {
    endpoint: `tcp:127.0.0.1:${(server.address() as AddressInfo).port}`,
    get accepted() {
      return accepted;
    },
    resetAll,
    async resetOutage(ms) {
      refusing = true;
      resetAll();
      await sleep(ms);
      refusing = false;
    },
    async silentOutage(ms) {
      held = sleep(ms);
      await held;
      held = undefined;
    },
    async close() {
      resetAll();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/**
 * Connects `client` to `targetPort` and copies bytes both ways; while `held()` gives a promise,
 * a chunk waits for it (its side paused meanwhile, so the order holds).
 */
function forwardPair(client: Socket, targetPort: number, pairs: Set<Pair>, held: () => Promise<void> | undefined): void {
  const upstream = createConnection({ host: '127.0.0.1', port: targetPort, noDelay: true });
  const pair = { client, upstream };
  pairs.add(pair);
  for (const [from, to] of [[client, upstream], [upstream, client]] as const) {
    from.on('error', () => to.destroy());
    from.on('close', () => {
      pairs.delete(pair);
      const hold = held();
      if (hold) void hold.then(() => to.destroy());
      else to.destroy();
    });
    copy(from, to, held);
  }
}

/**
 * Copies `from` into `to` with backpressure, as a real link has: `from` is paused while `to`
 * has more buffered than its high-water mark (until 'drain') and while a silent outage holds
 * a chunk, so a fast writer fills its own socket buffers instead of this process's memory.
 */
function copy(from: Socket, to: Socket, held: () => Promise<void> | undefined): void {
  let blocks = 0;
  const block = () => {
    if (blocks++ === 0) from.pause();
  };
  const unblock = () => {
    if (--blocks === 0 && !from.destroyed) from.resume();
  };
  const write = (chunk: Buffer) => {
    if (to.destroyed || to.write(chunk)) return;
    block();
    to.once('drain', unblock);
  };
  from.on('data', (chunk: Buffer) => {
    const hold = held();
    if (!hold) return write(chunk);
    block();
    void hold.then(() => {
      write(chunk);
      unblock();
    });
  });
}

// The receiving side of the migration benchmarks, in its own process so that each side's CPU
// time is its own (as two hosts would have). It reads one JSON command per line on stdin and
// answers one JSON line on stdout:
//   {"op":"receive","threads":2}  → {"address":"tcp:127.0.0.1:P"} then {"received":{…},"cpuMicros":N}
//   {"op":"receive","threads":2,"psk":"HEX"}  → the same, every connection under TLS with that key
//   {"op":"raw","bytes":N}         → {"address":…} then {"rawMs":T}  (one plain TCP stream, bytes counted)
import { createServer, type AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { memoryDestination } from '../src/migration/destination.js';
import { listen } from '../src/migration/listen.js';
import { WorkerPool } from '../src/pool/pool.js';
import { parsePskFile } from '../src/transport/index.js';

const pools = new Map<number, WorkerPool>();
const say = (message: object) => process.stdout.write(JSON.stringify(message) + '\n');

async function receive(threads: number, psk: string | undefined): Promise<void> {
  let pool = pools.get(threads);
  if (!pool) pools.set(threads, (pool = new WorkerPool({ threads })));
  const tls = psk ? { psk: parsePskFile(`bench:${psk}`) } : undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination(), pool, tls });
  say({ address: receiver.address });
  const cpu = process.cpuUsage();
  try {
    const received = await receiver.result;
    const used = process.cpuUsage(cpu);
    say({ received: { ...received, checksum: received.checksum.toString(16) }, cpuMicros: used.user + used.system });
  } catch (error) {
    say({ error: (error as Error).message });
  }
  collectGarbage();
}

/**
 * Frees the last migration's destination before the next one starts, as a new QEMU process
 * starts with none: a receiver that reads into staging slots makes almost no garbage, so V8
 * would keep gigabytes of finished destinations resident, and the next destination's pages
 * would come from memory this machine has never touched (several times slower to fault in).
 */
function collectGarbage(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** A plain Node TCP stream moving `bytes`: the baseline every channel count is compared with. */
async function raw(bytes: number): Promise<void> {
  const server = createServer((socket) => {
    let seen = 0;
    let start = 0;
    socket.on('data', (chunk) => {
      if (seen === 0) start = performance.now();
      seen += chunk.byteLength;
      if (seen >= bytes) {
        say({ rawMs: performance.now() - start });
        socket.end();
        server.close();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  say({ address: `tcp:127.0.0.1:${(server.address() as AddressInfo).port}` });
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line) as { op: string; threads?: number; bytes?: number; psk?: string };
  if (command.op === 'receive') await receive(command.threads ?? 2, command.psk);
  else if (command.op === 'raw') await raw(command.bytes!);
}
await Promise.all([...pools.values()].map((pool) => pool.close()));

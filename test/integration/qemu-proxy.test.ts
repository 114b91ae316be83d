// A real Linux guest migrates from one QEMU 7.2 to another through the proxy pair (issue 13):
// source QEMU → proxyFromQemu → link (2 data connections, zstd) → proxyToQemu → destination
// QEMU, all over 127.0.0.1, QEMU multifd-channels 2 on both. The harness is
// test/helpers/qemu-vm.ts (TCG, the busybox guest whose dirtier keeps rewriting its memory).
// The destination starts with -incoming defer -S; once both QEMUs report completed and the
// source is stopped, both RAMs are dumped with pmemsave and must be identical, and after
// `cont` the guest's counter goes on at the destination. One more run cuts a link data
// connection mid-migration from outside the process (`ss -K`, as a reset on the network would):
// the source proxy sends its frames again and dials it again, and the same must hold.
// Skipped, with the reason, without qemu-system-x86_64 or without the built guest.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { proxyToQemu } from '../../src/qemu/proxy-destination.js';
import { proxyFromQemu } from '../../src/qemu/proxy-source.js';
import type { ProxyHandle } from '../../src/qemu/proxy-common.js';
import { startMultifd } from '../helpers/cli.js';
import { assertGuestMovedIntact, assertMigrationCompleted, freePort, qemuGuestSkipReason, startGuestPair, type QemuVm } from '../helpers/qemu-vm.js';
import { execFileSync } from 'node:child_process';
import { mainStreamHead } from '../unit/qemu/main-stream.js';
import { connectTo, collect, fakePackets, FakeDestination, initBytes, packetBytes, parseChannel, Relay } from '../unit/qemu/fake-qemu.js';

const test = suite('a real guest migrates between two QEMU 7.2 processes through the proxy pair');
const reason = qemuGuestSkipReason();
if (reason) console.log(`  skipped: ${reason}`);
const register = reason ? test.skip : test;

const MEMORY_MIB = 256;
const DIRTIER_MIB = 160;
/** QEMU's multifd-channels in each run (the link has as many data connections). */
const CHANNEL_COUNTS = [2, 1, 4];
/** A failure guard only: no assertion depends on how fast anything is. */
const GUARD_MS = 300_000;

const RUNS = [...CHANNEL_COUNTS.map((channels) => ({ channels, cut: false })), { channels: 2, cut: true }];

for (const { channels, cut } of RUNS) {
  const title = cut
    ? 'the same with a link data connection cut mid-migration (ss -K): its frames are sent again, the migration completes, RAM identical'
    : `a guest that keeps dirtying its memory migrates through the proxies, ${channels} QEMU channel(s), zstd on the link: completed, identical RAM, its counter going on`;
  register(title, async () => {
    // Each run closes its QEMUs (a continued destination guest keeps a core busy) and proxies.
    const vms: QemuVm[] = [];
    const proxies: ProxyHandle[] = [];
    const relay = cut ? new Relay('') : undefined;
    try {
      await migrateThroughProxies(channels, vms, proxies, relay);
    } finally {
      await Promise.all(proxies.map((p) => p.close()));
      await relay?.close();
      await Promise.all(vms.map((vm) => vm.close()));
    }
  });
}

/**
 * Kills the source proxy's end of link data connection 0 from outside the process: `ss -K`
 * on its local port, which the relay saw as the second connection (the control connection
 * is dialled first). The relay keeps its other end open, as a network that lost only one side
 * would; the destination proxy learns of it when the source proxy dials the channel again.
 */
function cutFirstDataConnection(relay: Relay): void {
  const port = relay.connections[1]![0].remotePort!;
  execFileSync('ss', ['-K', 'sport', '=', `:${port}`], { stdio: 'ignore' });
}

async function migrateThroughProxies(channels: number, vms: QemuVm[], proxies: ProxyHandle[], relay?: Relay): Promise<void> {
  const started = performance.now();
  const pair = await startGuestPair(vms, { memoryMib: MEMORY_MIB, dirtierMib: DIRTIER_MIB, channels, guardMs: GUARD_MS });
  const { source, destination } = pair;
  const incoming = `tcp:127.0.0.1:${await freePort()}`;
  await destination.migrateIncoming(incoming);
  const toQemu = await proxyToQemu({ listen: 'tcp:127.0.0.1:0', toQemu: incoming });
  proxies.push(toQemu);
  if (relay) await relay.start(toQemu.address!);
  const fromQemu = await proxyFromQemu({ fromQemu: 'tcp:127.0.0.1:0', to: relay?.address ?? toQemu.address!, qemuChannels: channels, codec: 'zstd' });
  proxies.push(fromQemu);

  const migrating = performance.now();
  await source.migrate(fromQemu.address!);
  if (relay) {
    // A quarter in: the guest's 160 MiB of varied pages are about 320 QEMU packets.
    await waitUntil(() => fromQemu.stats.packets >= 80);
    cutFirstDataConnection(relay);
  }
  const { sent } = await assertMigrationCompleted(pair, GUARD_MS);
  const migrationMs = performance.now() - migrating;
  const [out, into] = await Promise.all([fromQemu.done, toQemu.done]);
  assert.is(out.status, 'completed');
  assert.is(into.status, 'completed');
  assert.ok(out.pages > 0 && out.pages === into.pages, `pages carried: ${out.pages} / ${into.pages}`);
  assert.is(out.packets, into.packets);
  assert.is(out.qemuMultifdBytes, into.qemuMultifdBytes, 'the destination QEMU got every multifd byte the source QEMU sent');
  assert.is(out.mainBytes, into.mainBytes, 'and every main-channel byte');
  if (relay) assert.ok(out.linkLosses >= 1, `the source proxy lost link data 0 (${out.linkLosses})`);
  console.log(
    `  measured (${channels} channel(s)): migration ${(migrationMs / 1000).toFixed(1)} s (QEMU total-time ${sent['total-time']} ms); QEMU multifd-bytes ${sent.ram?.['multifd-bytes']}, ` +
      `proxy: QEMU multifd bytes ${out.qemuMultifdBytes}, link data bytes ${out.linkChannelBytes.join('+')} (ratio ${out.ratio.toFixed(2)}), ` +
      `wire ${out.wireBytes}, main ${out.mainBytes}, pages ${out.pages}, zero pages ${out.zeroPages}, packets ${out.packets}, ` +
      `link connections lost ${out.linkLosses}, packet frames sent again ${out.resentPackets} (${into.resentPackets} of them already at the destination)`,
  );

  await assertGuestMovedIntact(pair, GUARD_MS);
  console.log(`  measured: ${((performance.now() - started) / 1000).toFixed(1)} s in all`);
}

test.run();

// The CLI pair, with fake QEMUs (test/unit/qemu/fake-qemu.ts): needs neither QEMU nor the guest.
const cli = suite('multifd proxy: the CLI pair');

cli('two `multifd proxy` processes carry a migration and end with complete events; the destination QEMU gets every packet', async () => {
  const qemu = new FakeDestination();
  await qemu.start();
  const destination = startMultifd(['proxy', '--listen', 'tcp:127.0.0.1:0', '--to-qemu', qemu.address, '--json']);
  let source: ReturnType<typeof startMultifd> | undefined;
  try {
    const [, linkAddress] = await destination.waitFor(/"address":"(tcp:[^"]+)"/);
    source = startMultifd(['proxy', '--from-qemu', 'tcp:127.0.0.1:0', '--to', linkAddress!, '--qemu-channels', '1', '--multifd-compression', 'lz4', '--threads', '1', '--json']);
    const [, qemuAddress] = await source.waitFor(/"address":"(tcp:[^"]+)"/);
    const main = await connectTo(qemuAddress!);
    const mainGot = collect(main);
    const mainBytes = Buffer.concat([mainStreamHead([{ name: 'pc.ram', bytes: 1 << 30 }]), Buffer.from('and some device state')]);
    main.end(mainBytes);
    const channel = await connectTo(qemuAddress!);
    const packets = fakePackets(0, 2, 3);
    channel.write(initBytes(0));
    for (const packet of packets) channel.write(packetBytes(packet));
    channel.end();
    await waitUntil(() => qemu.accepted.length === 2);
    qemu.accepted[0]!.end();
    const [src, dst] = await Promise.all([source.done, destination.done]);
    assert.is(src.code, 0, src.stderr);
    assert.is(dst.code, 0, dst.stderr);
    const complete = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as { event: string; packets: number; pages: number; codec: string };
    for (const run of [src, dst]) {
      const event = complete(run.stdout);
      assert.is(event.event, 'complete');
      assert.is(event.packets, packets.length);
      assert.is(event.pages, packets.reduce((n, p) => n + p.header.normalPages, 0));
      assert.is(event.codec, 'lz4');
    }
    const received = await Promise.all(qemu.received);
    assert.ok(Buffer.from(received[0]!.bytes).equals(mainBytes), 'the main channel byte for byte');
    const { items } = parseChannel(received[1]!.bytes);
    assert.equal(items.slice(1).map((i) => (i.kind === 'packet' ? i.header : undefined)), packets.map((p) => p.header));
    await mainGot;
  } finally {
    source?.kill('SIGTERM');
    destination.kill('SIGTERM');
    await Promise.all([source?.done, destination.done]);
    await qemu.close();
  }
});

cli('a usage mistake exits 2 naming it', async () => {
  const run = await startMultifd(['proxy', '--from-qemu', 'tcp:127.0.0.1:0']).done;
  assert.is(run.code, 2);
  assert.match(run.stderr, /--to URI is required/);
});

async function waitUntil(condition: () => boolean): Promise<void> {
  const deadline = performance.now() + GUARD_MS;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error('condition not met before the guard');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

cli.run();

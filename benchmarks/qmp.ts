// A minimal QMP client (QEMU's JSON machine protocol) over a unix socket: one JSON object per
// line each way. Commands are answered in order; events ({"event": …}) arrive in between and
// are kept until someone waits for them, so an event that comes before its wait is not lost.
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createInterface } from 'node:readline';
import { MultifdError } from '../src/errors.js';

/** A QMP event as QEMU sends it. */
export interface QmpEvent {
  readonly event: string;
  readonly data?: Record<string, unknown>;
}

type Reply = { return?: unknown; error?: { class: string; desc: string } };

/** One QMP connection, in command mode after {@link QmpClient.open}. */
export class QmpClient {
  private readonly replies: Array<(reply: Reply) => void> = [];
  private readonly events: QmpEvent[] = [];
  private eventWaiters: Array<() => void> = [];
  private closed: Error | undefined;

  private constructor(
    private readonly socket: Socket,
    private readonly name: string,
  ) {
    const lines = createInterface({ input: socket });
    let greeted = false;
    lines.on('line', (line) => {
      const message = JSON.parse(line) as Reply & Partial<QmpEvent> & { QMP?: unknown };
      if (message.QMP !== undefined && !greeted) greeted = true;
      else if (message.event !== undefined) {
        this.events.push({ event: message.event, data: message.data });
        for (const wake of this.eventWaiters.splice(0)) wake();
      } else this.replies.shift()?.({ return: message.return, error: message.error });
    });
    // A reset after `quit` is the normal end; 'close' follows either way and settles every wait.
    lines.on('error', () => undefined);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = new MultifdError('ERR_QMP_CLOSED', `${name}: QMP connection closed`, { context: { qemu: name } });
      for (const wake of this.eventWaiters.splice(0)) wake();
      for (const reply of this.replies.splice(0)) reply({ error: { class: 'Closed', desc: 'connection closed' } });
    });
  }

  /**
   * Connects to `path` (retrying while QEMU creates the socket, up to `timeoutMs`) and enters
   * command mode.
   * @throws MultifdError `ERR_QMP_CONNECT` when the socket does not answer in time.
   */
  static async open(path: string, name: string, timeoutMs = 10_000): Promise<QmpClient> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        const socket = await new Promise<Socket>((resolve, reject) => {
          const s = connect(path, () => resolve(s));
          s.once('error', reject);
        });
        const client = new QmpClient(socket, name);
        await client.execute('qmp_capabilities').catch((error: unknown) => {
          client.close();
          throw error;
        });
        return client;
      } catch (error) {
        if (performance.now() > deadline) throw new MultifdError('ERR_QMP_CONNECT', `${name}: no QMP socket at ${path} after ${timeoutMs} ms`, { cause: error, context: { qemu: name, path } });
        await sleep(20);
      }
    }
  }

  /**
   * Runs one command and resolves with its `return` value.
   * @throws MultifdError `ERR_QMP_COMMAND` with QEMU's error class and description.
   */
  async execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    if (this.closed) throw this.closed;
    const reply = await new Promise<Reply>((resolve) => {
      this.replies.push(resolve);
      this.socket.write(JSON.stringify(args ? { execute: command, arguments: args } : { execute: command }) + '\n');
    });
    if (reply.error) {
      throw new MultifdError('ERR_QMP_COMMAND', `${this.name}: ${command} failed: ${reply.error.desc}`, { context: { qemu: this.name, command, class: reply.error.class, arguments: JSON.stringify(args ?? {}) } });
    }
    return reply.return;
  }

  /**
   * Resolves with the first event (kept or still to come) that `match` accepts, removing it
   * from the kept ones.
   * @throws MultifdError `ERR_QMP_TIMEOUT` after `timeoutMs`, or the close error.
   */
  async waitEvent(match: (event: QmpEvent) => boolean, timeoutMs: number): Promise<QmpEvent> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const index = this.events.findIndex(match);
      if (index >= 0) return this.events.splice(index, 1)[0]!;
      if (this.closed) throw this.closed;
      const left = deadline - performance.now();
      if (left <= 0) throw new MultifdError('ERR_QMP_TIMEOUT', `${this.name}: no matching event within ${timeoutMs} ms`, { context: { qemu: this.name, timeoutMs } });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.eventWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Closes the connection. */
  close(): void {
    this.socket.destroy();
  }
}

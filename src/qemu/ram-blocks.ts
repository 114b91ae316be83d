// The RAM block table a source QEMU announces on its main channel, and the check of multifd
// packets against it. The table comes early: QEVM and version 3, an optional configuration
// section, then the first section, "ram" version 4, opens with be64 `total | MEM_SIZE` and
// lists each block as u8 length, idstr, be64 used_length until the lengths sum to the total
// (reference/qemu-multifd.md §2.5; savevm.c's header and ram.c's ram_save_setup). A proxy
// beside the source only observes these bytes on their way through: it learns the table, then
// stops reading, since parsing further would mean implementing every device's vmstate.
//
// Whatever could change what the block list means is refused, not guessed: postcopy (a page
// size after some blocks) and the capabilities the configuration lists (x-ignore-shared adds
// an address after every block; later QEMUs add mapped-ram, another format). Without them the
// table can only be misread by a stream that is not QEMU's, and then its checks (names UTF-8,
// lengths whole pages, their sum the total) catch it.
import type { ProtocolError } from '../errors.js';
import { ByteReader } from '../wire/byte-cursor.js';
import { hex } from '../wire/constants.js';
import { StreamReader } from '../wire/stream-reader.js';
import { QEMU_MAIN_MAGIC, qemuPageCount, qemuProtocolError, type QemuLocation, type QemuPacketHeader } from './multifd-format.js';

/** Version of the main stream after its magic (`QEMU_VM_FILE_VERSION`), 3 since QEMU 0.13. */
export const QEMU_MAIN_VERSION = 3;

/** Version of the "ram" section whose setup carries the block table. */
export const QEMU_RAM_SECTION_VERSION = 4;

/** Flag in the low bits of the ram section's first be64: the total RAM size follows (`RAM_SAVE_FLAG_MEM_SIZE`). */
export const QEMU_RAM_FLAG_MEM_SIZE = 0x04;

/**
 * Most bytes {@link RamBlockTableReader} reads before the table is complete: QEMU 7.2's
 * `-machine pc` sends 183, and each block adds at most 264, so 64 KiB is hundreds of blocks.
 */
export const QEMU_MAX_MAIN_HEAD_BYTES = 64 * 1024;

/** Longest machine type name the configuration section may carry (7.2's are like "pc-i440fx-7.2"). */
export const QEMU_MAX_MACHINE_NAME_BYTES = 256;

/**
 * The source's RAM blocks: idstr → used_length in bytes, in the order QEMU listed them. Every
 * length is a whole number of pages; a multifd packet's offsets must lie within it.
 */
export type RamBlockTable = ReadonlyMap<string, number>;

/** What the main stream's configuration section said, when the source sent one. */
export interface QemuMainConfiguration {
  /** The machine type, e.g. "pc-i440fx-7.2"; the destination QEMU requires its own. */
  machine: string;
  /** `configuration/target-page-bits`, sent only by targets whose page size varies (not x86). */
  targetPageBits?: number;
  /** `configuration/uuid`, sent with `-uuid` and the validate-uuid capability. */
  uuid?: Uint8Array;
}

/** Section and subsection type bytes (savevm.c's `QEMU_VM_*`) the head can hold. */
const SECTION_START = 0x01;
const SUBSECTION = 0x05;
const CONFIGURATION = 0x07;
const COMMAND = 0x08;
/** Commands a source sends before its first section (`MIG_CMD_*`); only the first two are harmless. */
const COMMANDS = ['INVALID', 'OPEN_RETURN_PATH', 'PING', 'POSTCOPY_ADVISE', 'POSTCOPY_LISTEN', 'POSTCOPY_RUN'];
const OPEN_RETURN_PATH = 1;
const PING = 2;
const SUBSECTION_PREFIX = 'configuration/';
/** Largest single read: a u8-length name and 8 bytes after it, or the machine name. */
const SCRATCH_BYTES = Math.max(255 + 8, QEMU_MAX_MACHINE_NAME_BYTES);
const MAX_LENGTH = 2n ** 53n;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** What the reader waits for: `bytes` of `field`, handed to `then` once they are in. */
interface Need {
  bytes: number;
  field: string;
  then: (r: ByteReader) => void;
}

/** Where a type byte is read: whether a configuration section or a subsection of it may come. */
type Place = 'start' | 'configuration' | 'sections';

/**
 * Observes a source QEMU's main channel, fed the chunks it forwards (split at any byte), and
 * learns its RAM block table from the head of the stream. Once `table` is set, later chunks
 * are ignored at once and nothing is held; before it, at most one field (≤ 263 bytes) is.
 * `end()` says the channel closed: before the table that is `ERR_QEMU_TRUNCATED`.
 *
 * Refusals are ProtocolErrors `ERR_QEMU_MAIN` whose field names the byte offset in the stream
 * and the part ("main channel byte 8: section type"), with what was expected and what came:
 * another magic or version; an unknown configuration subsection, a subsection version not 1,
 * a target page size other than `pageSize`, any capability listed; a command other than
 * OPEN_RETURN_PATH or PING; a first section other than "ram" instance 0 version 4; no MEM_SIZE
 * record or one with other flags; an empty or non-UTF-8 name, a name listed twice, a length
 * that is zero, not whole pages, or past the total; a machine name or head past the limits
 * above. Once it has thrown, it throws the same error again.
 */
export class RamBlockTableReader extends StreamReader<RamBlockTable> {
  private readonly pageSize: number;
  private config: QemuMainConfiguration | undefined;
  private readonly scratch = new Uint8Array(SCRATCH_BYTES);
  private scratchFilled = 0;
  /** Stream offset of the bytes `need` asks for. */
  private offset = 0;
  private need: Need;
  private place: Place = 'start';
  private readonly blocks = new Map<string, number>();
  private totalBytes = 0n;
  private listedBytes = 0n;
  private learned: RamBlockTable | undefined;

  /** @throws RangeError `ERR_OUT_OF_RANGE` for a page size QEMU cannot have (see qemuPageCount). */
  constructor(options: { pageSize: number }) {
    super();
    qemuPageCount(options.pageSize);
    this.pageSize = options.pageSize;
    this.need = { bytes: 8, field: 'magic and version', then: (r) => this.readMagic(r) };
  }

  /** The RAM block table, once the head has been read; then the reader takes nothing more. */
  get table(): RamBlockTable | undefined {
    return this.learned;
  }

  /** The configuration section, once read; undefined when the source sent none. */
  get configuration(): QemuMainConfiguration | undefined {
    return this.config;
  }

  /** Bytes of the stream the head took, once `table` is set: where the table's last block ends. */
  get headBytes(): number {
    return this.offset;
  }

  /** Observes `chunk`; the caller may reuse it once this returns. O(1) once the table is known. */
  override push(chunk: Uint8Array): void {
    if (this.learned) return;
    super.push(chunk);
    this.next();
  }

  /** The channel closed: see the class. After the table, a clean end whatever follows. */
  override end(): void {
    if (!this.broken && !this.learned) throw this.truncated();
    super.end();
  }

  protected step(): RamBlockTable | undefined {
    while (!this.learned) {
      const need = this.need;
      this.scratchFilled = this.queue.fill(this.scratch, this.scratchFilled, need.bytes);
      if (this.scratchFilled < need.bytes) return undefined;
      this.scratchFilled = 0;
      need.then(new ByteReader(this.scratch.subarray(0, need.bytes)));
      if (this.need === need) this.offset += need.bytes; // the table's last block sets no next need
    }
    this.queue.clear();
    return this.learned;
  }

  protected partialBytes(): number {
    return this.scratchFilled;
  }

  protected truncated(): ProtocolError {
    const field = `main channel byte ${this.offset}: ${this.need.field}`;
    return qemuProtocolError('ERR_QEMU_TRUNCATED', {}, field, `${this.need.bytes} bytes`, `${this.scratchFilled} bytes before the end`);
  }

  /** Asks for the next field, after the one just read; refuses a head past its limit. */
  private expect(bytes: number, field: string, then: (r: ByteReader) => void): void {
    this.offset += this.need.bytes;
    this.need = { bytes, field, then };
    if (this.offset + bytes > QEMU_MAX_MAIN_HEAD_BYTES) {
      throw this.refuse('head', `the RAM block table within ${QEMU_MAX_MAIN_HEAD_BYTES} bytes`, `${this.offset + bytes} bytes and more`);
    }
  }

  /** An `ERR_QEMU_MAIN` about the field being read. */
  private refuse(field: string, expected: string | number, got: string | number): ProtocolError {
    return qemuProtocolError('ERR_QEMU_MAIN', {}, `main channel byte ${this.offset}: ${field}`, expected, got);
  }

  private readMagic(r: ByteReader): void {
    const magic = r.u32('magic');
    if (magic !== QEMU_MAIN_MAGIC) throw this.refuse('magic', `${hex(QEMU_MAIN_MAGIC, 8)} (QEVM)`, hex(magic, 8));
    const version = r.u32('version');
    if (version !== QEMU_MAIN_VERSION) throw this.refuse('version', QEMU_MAIN_VERSION, version);
    this.expectType();
  }

  private expectType(): void {
    this.expect(1, 'section type', (r) => this.readType(r.u8('section type')));
  }

  private readType(type: number): void {
    const place = this.place;
    this.place = 'sections';
    if (type === CONFIGURATION && place === 'start') {
      this.expect(4, 'configuration name length', (r) => this.readMachineLength(r.u32('length')));
    } else if (type === SUBSECTION && place === 'configuration') {
      this.place = 'configuration';
      this.expect(1, 'subsection name length', (r) => this.readSubsectionLength(r.u8('length')));
    } else if (type === COMMAND) {
      this.expect(4, 'command', (r) => this.readCommand(r.u16('command'), r.u16('length')));
    } else if (type === SECTION_START) {
      this.expect(5, 'section_id and idstr length', (r) => this.readSectionStart(r));
    } else {
      const allowed = [...(place === 'start' ? ['0x07 (CONFIGURATION)'] : []), ...(place === 'configuration' ? ['0x05 (SUBSECTION)'] : []), '0x08 (COMMAND)', '0x01 (SECTION_START) of "ram"'];
      throw this.refuse('section type', allowed.join(' or '), hex(type, 2));
    }
  }

  private readMachineLength(length: number): void {
    if (length === 0 || length > QEMU_MAX_MACHINE_NAME_BYTES) {
      throw this.refuse('configuration name length', `1 to ${QEMU_MAX_MACHINE_NAME_BYTES}`, length);
    }
    this.expect(length, 'configuration name', (r) => {
      this.config = { machine: this.readName(r, length, 'configuration name') };
      this.place = 'configuration';
      this.expectType();
    });
  }

  private readSubsectionLength(length: number): void {
    this.expect(length + 4, 'subsection name and version', (r) => {
      const name = this.readName(r, length, 'subsection name');
      const version = r.u32('version');
      const read = this.subsectionReader(name);
      if (version !== 1) throw this.refuse(`${name} version`, 1, version);
      read();
    });
  }

  /** What reads each subsection QEMU 7.2 to 10.x define for `configuration`, after its version. */
  private subsectionReader(name: string): () => void {
    const expectType = () => this.expectType();
    switch (name) {
      case `${SUBSECTION_PREFIX}target-page-bits`:
        return () => this.expect(4, name, (r) => this.readTargetPageBits(r.u32(name)));
      case `${SUBSECTION_PREFIX}uuid`:
        return () => this.expect(16, name, (r) => {
          this.config!.uuid = r.bytesView(name, 16).slice();
          expectType();
        });
      case `${SUBSECTION_PREFIX}capabilities`:
        return () => this.expect(4, `${name} count`, (r) => this.readCapabilityCount(r.u32('count')));
      default: {
        const known = ['target-page-bits', 'capabilities', 'uuid'].map((s) => SUBSECTION_PREFIX + s).join(', ');
        throw this.refuse('configuration subsection', `one of ${known}`, JSON.stringify(name));
      }
    }
  }

  private readTargetPageBits(bits: number): void {
    if (bits > 30 || 2 ** bits !== this.pageSize) {
      throw this.refuse(`${SUBSECTION_PREFIX}target-page-bits`, `${Math.log2(this.pageSize)} (page size ${this.pageSize})`, bits);
    }
    this.config!.targetPageBits = bits;
    this.expectType();
  }

  /** A listed capability is one the destination must share, each so far a change of format: refused by name. */
  private readCapabilityCount(count: number): void {
    if (count === 0) return this.expectType();
    this.expect(1, 'capability name length', (r) => {
      const length = r.u8('length');
      this.expect(length, 'capability name', (name) => {
        const capability = this.readName(name, length, 'capability name');
        throw this.refuse(`${SUBSECTION_PREFIX}capabilities`, 'no capability listed (x-ignore-shared and later ones change the RAM block list)', capability);
      });
    });
  }

  /** Commands a return path brings (7.2 opens it and pings before the first section) are skipped. */
  private readCommand(command: number, length: number): void {
    const name = COMMANDS[command] ?? `command ${command}`;
    const expectedLength = command === OPEN_RETURN_PATH ? 0 : command === PING ? 4 : undefined;
    if (expectedLength === undefined) {
      const why = name.startsWith('POSTCOPY') ? ' (postcopy adds page sizes to the RAM block list)' : '';
      throw this.refuse('command', `OPEN_RETURN_PATH or PING before the RAM section${why}`, name);
    }
    if (length !== expectedLength) throw this.refuse(`${name} length`, expectedLength, length);
    if (length === 0) return this.expectType();
    this.expect(length, name, () => this.expectType());
  }

  private readSectionStart(r: ByteReader): void {
    r.u32('section_id');
    const length = r.u8('idstr length');
    this.expect(length + 8, 'section idstr, instance_id and version_id', (fields) => {
      const idstr = this.readName(fields, length, 'section idstr', true);
      const instance = fields.u32('instance_id');
      const version = fields.u32('version_id');
      if (idstr !== 'ram' || instance !== 0 || version !== QEMU_RAM_SECTION_VERSION) {
        throw this.refuse('first section', `"ram" instance 0 version ${QEMU_RAM_SECTION_VERSION}`, `${JSON.stringify(idstr)} instance ${instance} version ${version}`);
      }
      this.expect(8, 'MEM_SIZE record', (record) => this.readMemSize(record.u64('MEM_SIZE record')));
    });
  }

  private readMemSize(value: bigint): void {
    const flags = value & BigInt(this.pageSize - 1);
    if (flags !== BigInt(QEMU_RAM_FLAG_MEM_SIZE)) {
      throw this.refuse('ram record flags', `${hex(QEMU_RAM_FLAG_MEM_SIZE, 2)} (MEM_SIZE, the RAM block list)`, hex(flags, 2));
    }
    this.totalBytes = value - flags;
    if (this.totalBytes === 0n) this.learned = this.blocks;
    else this.expectBlock();
  }

  private expectBlock(): void {
    this.expect(1, 'RAM block idstr length', (r) => {
      const length = r.u8('length');
      if (length === 0) throw this.refuse('RAM block idstr length', '1 to 255', 0);
      this.expect(length + 8, 'RAM block idstr and used_length', (block) => this.readBlock(block, length));
    });
  }

  private readBlock(r: ByteReader, length: number): void {
    const name = this.readName(r, length, 'RAM block idstr');
    const usedLength = r.u64('used_length');
    const field = `RAM block ${JSON.stringify(name)} used_length`;
    const left = this.totalBytes - this.listedBytes;
    if (usedLength === 0n || usedLength % BigInt(this.pageSize) !== 0n) throw this.refuse(field, `a non-zero multiple of ${this.pageSize}`, hex(usedLength, 1));
    if (usedLength > left) throw this.refuse(field, `at most ${hex(left, 1)} (MEM_SIZE total less the blocks before)`, hex(usedLength, 1));
    if (usedLength >= MAX_LENGTH) throw this.refuse(field, 'below 2^53', hex(usedLength, 1));
    if (this.blocks.has(name)) throw this.refuse('RAM block idstr', 'a name not listed before', JSON.stringify(name));
    this.blocks.set(name, Number(usedLength));
    this.listedBytes += usedLength;
    if (this.listedBytes === this.totalBytes) this.learned = this.blocks;
    else this.expectBlock();
  }

  /** `length` bytes of UTF-8 without NUL; `part` names them in a refusal. */
  private readName(r: ByteReader, length: number, part: string, allowEmpty = false): string {
    const bytes = r.bytesView(part, length);
    let name: string | undefined;
    try {
      name = utf8.decode(bytes);
    } catch {
      name = undefined;
    }
    if (name === undefined || name.includes('\0') || (!allowEmpty && name === '')) {
      throw this.refuse(part, 'a UTF-8 name without NUL', `bytes ${Array.from(bytes, (b) => hex(b, 2)).join(' ')}`);
    }
    return name;
  }
}

/**
 * Checks a multifd packet's pages against the source's RAM blocks, as the destination QEMU
 * would when placing them: the block must be in `table` and every listed offset, normal or
 * zero, must leave a whole page inside it (`offset + pageSize ≤ used_length`). A packet without
 * pages is accepted whatever block it names: QEMU leaves a stale name, or none, in those.
 * @throws ProtocolError `ERR_QEMU_RAMBLOCK` (the name not in the table) or `ERR_QEMU_OFFSET`
 * (`offset[i]`, QEMU's index: normal pages first, then zero pages), located by `where`.
 */
export function checkPacketAgainstBlocks(header: QemuPacketHeader, table: RamBlockTable, pageSize: number, where: QemuLocation = {}): void {
  if (header.normalPages + header.zeroPages === 0) return;
  const usedLength = table.get(header.ramBlock);
  if (usedLength === undefined) {
    throw qemuProtocolError('ERR_QEMU_RAMBLOCK', where, 'ramblock', `a RAM block of the source (${blockNames(table)})`, JSON.stringify(header.ramBlock));
  }
  const offsets = [...header.normalOffsets, ...header.zeroOffsets];
  for (let i = 0; i < offsets.length; i++) {
    if (offsets[i]! + pageSize > usedLength) {
      const expected = `at most ${hex(usedLength - pageSize, 1)} (block ${JSON.stringify(header.ramBlock)} has ${usedLength} bytes)`;
      throw qemuProtocolError('ERR_QEMU_OFFSET', where, `offset[${i}]`, expected, hex(offsets[i]!, 1));
    }
  }
}

/** The table's names for a message, the first few of a long list. */
function blockNames(table: RamBlockTable): string {
  const names = [...table.keys()].map((name) => JSON.stringify(name));
  if (names.length === 0) return 'none listed';
  return names.length <= 8 ? names.join(', ') : `${names.slice(0, 8).join(', ')} and ${names.length - 8} more`;
}

// The head of a source QEMU's main migration stream, written byte for byte from savevm.c's
// layout (reference/qemu-multifd.md §2.5) for tests that need a main channel: QEVM, version 3,
// the configuration section, the commands a return path brings, and the "ram" section's start
// up to the end of its RAM block list. Built with the wire cursor, not with the reader under test.
import { ByteWriter } from '../../../src/wire/byte-cursor.js';

/** One RAM block as the source lists it. */
export interface MainStreamBlock {
  name: string;
  /** used_length: a whole number of pages. */
  bytes: number;
}

/** What the head carries besides the blocks; the defaults are QEMU 7.2's `-machine pc` with no options. */
export interface MainStreamHeadOptions {
  /** The configuration section's machine type; null leaves the section out (send-configuration=off). */
  machine?: string | null;
  /** A `configuration/target-page-bits` subsection with this value (targets with a variable page size). */
  targetPageBits?: number;
  /** A `configuration/capabilities` subsection listing these (7.2: x-ignore-shared). */
  capabilities?: string[];
  /** A `configuration/uuid` subsection (`-uuid` and validate-uuid). */
  uuid?: Uint8Array;
  /** OPEN_RETURN_PATH and PING(1) before the first section, as with the return-path capability. */
  returnPath?: boolean;
  /** The first section's idstr and version ("ram", 4). */
  section?: { idstr: string; version: number };
  /** The MEM_SIZE record's total; the blocks' sum when absent. */
  totalBytes?: number;
}

/** QEMU 7.2's `-machine pc` machine type. */
export const PC_MACHINE = 'pc-i440fx-7.2';

/**
 * The bytes a QEMU 7.2 source sends on its main channel up to and including the last RAM
 * block of the MEM_SIZE record. What follows in a real stream (7.2: the EOS flag 0x10 as a
 * be64, then the section footer 0x7E and its id) is the test's to append.
 */
export function mainStreamHead(blocks: MainStreamBlock[], options: MainStreamHeadOptions = {}): Uint8Array {
  const w = new ByteWriter();
  w.u32(0x5145564d, 'magic');
  w.u32(3, 'version');
  const machine = options.machine === undefined ? PC_MACHINE : options.machine;
  if (machine !== null) writeConfiguration(w, machine, options);
  if (options.returnPath) {
    w.bytes(Uint8Array.of(0x08, 0x00, 0x01, 0x00, 0x00)); // OPEN_RETURN_PATH, no data
    w.bytes(Uint8Array.of(0x08, 0x00, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01)); // PING 1
  }
  const section = options.section ?? { idstr: 'ram', version: 4 };
  w.u8(0x01, 'SECTION_START');
  w.u32(2, 'section_id'); // what 7.2 -machine pc gives "ram"
  shortString(w, section.idstr);
  w.u32(0, 'instance_id');
  w.u32(section.version, 'version_id');
  const total = options.totalBytes ?? blocks.reduce((sum, block) => sum + block.bytes, 0);
  w.u64(BigInt(total) | 0x04n, 'MEM_SIZE');
  for (const block of blocks) {
    shortString(w, block.name);
    w.u64(block.bytes, 'used_length');
  }
  return w.written().slice();
}

/** The configuration section: the vmstate of `configuration` and its subsections in QEMU's order. */
function writeConfiguration(w: ByteWriter, machine: string, options: MainStreamHeadOptions): void {
  const name = new TextEncoder().encode(machine);
  w.u8(0x07, 'CONFIGURATION');
  w.u32(name.byteLength, 'len');
  w.bytes(name);
  if (options.targetPageBits !== undefined) {
    subsectionHead(w, 'target-page-bits');
    w.u32(options.targetPageBits, 'target_page_bits');
  }
  if (options.capabilities) {
    subsectionHead(w, 'capabilities');
    w.u32(options.capabilities.length, 'caps_count');
    for (const capability of options.capabilities) shortString(w, capability);
  }
  if (options.uuid) {
    subsectionHead(w, 'uuid');
    w.bytes(options.uuid);
  }
}

function subsectionHead(w: ByteWriter, name: string): void {
  w.u8(0x05, 'SUBSECTION');
  shortString(w, `configuration/${name}`);
  w.u32(1, 'version_id');
}

/** u8 length and the UTF-8 bytes, as QEMU writes idstrs and names. */
function shortString(w: ByteWriter, value: string): void {
  const bytes = new TextEncoder().encode(value);
  w.u8(bytes.byteLength, 'length');
  w.bytes(bytes);
}

// Raw DEFLATE block structure (RFC 1951) for tests, written apart from the encoder's own walker
// (wasm/c/deflate_iaa.c) so that each checks the other. The reader gives every block's type and,
// for dynamic blocks, the runs (code-length symbols 16, 17, 18) in its header; it decodes the
// data of every block, to find where the next one starts and where the stream ends, but keeps
// none. The writer joins streams into one of several blocks and writes dynamic headers by hand,
// with runs no encoder we have would write.

/** A run in a dynamic header: `count` code lengths from index `first` (literal/length first, then distance). */
export interface CodeLengthRun {
  readonly symbol: 16 | 17 | 18;
  readonly first: number;
  readonly count: number;
}

export interface DeflateBlock {
  readonly final: boolean;
  readonly type: 'stored' | 'fixed' | 'dynamic';
  /** HLIT + 257 and HDIST + 1 of a dynamic block (0 otherwise). */
  readonly litlenCount: number;
  readonly distCount: number;
  readonly runs: readonly CodeLengthRun[];
}

export interface DeflateStructure {
  readonly blocks: readonly DeflateBlock[];
  /** Bits up to the end of the final block. */
  readonly endBit: number;
}

/** A run IAA refuses: it spans the literal/length and distance lengths, or a 16 starts the distance lengths. */
export function crosses(run: CodeLengthRun, litlenCount: number): boolean {
  return (run.first < litlenCount && run.first + run.count > litlenCount) || (run.symbol === 16 && run.first === litlenCount);
}

/** Every crossing run of a stream, with its block's index. `finalData` as for {@link readDeflate}. */
export function crossingRuns(stream: Uint8Array, finalData = true): Array<CodeLengthRun & { block: number }> {
  return readDeflate(stream, finalData).blocks.flatMap((block, i) => block.runs.filter((run) => crosses(run, block.litlenCount)).map((run) => ({ ...run, block: i })));
}

class Bits {
  position = 0;
  constructor(private readonly bytes: Uint8Array) {}

  bit(): number {
    const byte = this.position >> 3;
    if (byte >= this.bytes.length) throw new Error(`DEFLATE stream truncated at bit ${this.position}`);
    return (this.bytes[byte]! >> (this.position++ & 7)) & 1;
  }

  /** An n-bit number, least significant bit first. */
  number(n: number): number {
    let value = 0;
    for (let i = 0; i < n; i++) value |= this.bit() << i;
    return value;
  }
}

/** Each symbol's canonical codeword (RFC 1951, 3.2.2), undefined for length 0. */
function codewords(lengths: readonly number[]): Array<{ code: number; length: number } | undefined> {
  const words: Array<{ code: number; length: number } | undefined> = new Array(lengths.length);
  let next = 0;
  for (let length = 1; length <= 15; length++) {
    for (let symbol = 0; symbol < lengths.length; symbol++) {
      if (lengths[symbol] !== length) continue;
      if (next >= 2 ** length) throw new Error('oversubscribed Huffman code');
      words[symbol] = { code: next++, length };
    }
    next <<= 1;
  }
  return words;
}

/** A Huffman code as codeword → symbol, one map per codeword length (codewords read most significant bit first). */
type Code = Array<Map<number, number>>;

function canonicalCode(lengths: readonly number[]): Code {
  const code: Code = Array.from({ length: 16 }, () => new Map());
  codewords(lengths).forEach((word, symbol) => word && code[word.length]!.set(word.code, symbol));
  return code;
}

function decodeSymbol(bits: Bits, code: Code): number {
  let codeword = 0;
  for (let length = 1; length <= 15; length++) {
    codeword = (codeword << 1) | bits.bit();
    const symbol = code[length]!.get(codeword);
    if (symbol !== undefined) return symbol;
  }
  throw new Error(`no Huffman codeword at bit ${bits.position}`);
}

const PRECODE_ORDER = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15];
const FIXED_LITLEN = canonicalCode(Array.from({ length: 288 }, (_, s) => (s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8)));
const FIXED_DIST = canonicalCode(new Array<number>(30).fill(5));

/** Reads a dynamic header: the code lengths of both codes, and the runs that gave them. */
function dynamicHeader(bits: Bits) {
  const litlenCount = bits.number(5) + 257;
  const distCount = bits.number(5) + 1;
  const precodeCount = bits.number(4) + 4;
  const precodeLengths = new Array<number>(19).fill(0);
  for (let i = 0; i < precodeCount; i++) precodeLengths[PRECODE_ORDER[i]!] = bits.number(3);
  const precode = canonicalCode(precodeLengths);
  const lengths: number[] = [];
  const runs: CodeLengthRun[] = [];
  while (lengths.length < litlenCount + distCount) {
    const symbol = decodeSymbol(bits, precode);
    if (symbol < 16) {
      lengths.push(symbol);
      continue;
    }
    if (symbol === 16 && lengths.length === 0) throw new Error('code-length 16 with no previous length');
    const count = symbol === 16 ? 3 + bits.number(2) : symbol === 17 ? 3 + bits.number(3) : 11 + bits.number(7);
    runs.push({ symbol: symbol as 16 | 17 | 18, first: lengths.length, count });
    const value = symbol === 16 ? lengths[lengths.length - 1]! : 0;
    for (let i = 0; i < count; i++) lengths.push(value);
  }
  if (lengths.length !== litlenCount + distCount) throw new Error('code-length run past the last distance code');
  return { litlenCount, distCount, runs, litlen: canonicalCode(lengths.slice(0, litlenCount)), dist: canonicalCode(lengths.slice(litlenCount)) };
}

function skipData(bits: Bits, litlen: Code, dist: Code): void {
  for (;;) {
    const symbol = decodeSymbol(bits, litlen);
    if (symbol < 256) continue;
    if (symbol === 256) return;
    if (symbol > 285) throw new Error(`literal/length symbol ${symbol}`);
    const slot = symbol - 257;
    bits.number(slot < 8 || slot === 28 ? 0 : (slot >> 2) - 1);
    const distance = decodeSymbol(bits, dist);
    if (distance > 29) throw new Error(`distance symbol ${distance}`);
    bits.number(distance < 4 ? 0 : (distance >> 1) - 1);
  }
}

/**
 * Reads every block of a raw DEFLATE stream. `finalData` false stops after the final block's
 * header (faster; `endBit` is then where its data starts).
 * @throws Error when the stream is truncated or not valid DEFLATE.
 */
export function readDeflate(stream: Uint8Array, finalData = true): DeflateStructure {
  const bits = new Bits(stream);
  const blocks: DeflateBlock[] = [];
  for (let final = false; !final; ) {
    final = bits.bit() === 1;
    const type = bits.number(2);
    if (type === 0) {
      bits.position = (bits.position + 7) & ~7;
      const length = bits.number(16);
      if ((length ^ bits.number(16)) !== 0xffff) throw new Error('stored block length and its complement differ');
      bits.position += 8 * length;
      blocks.push({ final, type: 'stored', litlenCount: 0, distCount: 0, runs: [] });
    } else if (type === 1) {
      if (!final || finalData) skipData(bits, FIXED_LITLEN, FIXED_DIST);
      blocks.push({ final, type: 'fixed', litlenCount: 0, distCount: 0, runs: [] });
    } else if (type === 2) {
      const { litlenCount, distCount, runs, litlen, dist } = dynamicHeader(bits);
      if (!final || finalData) skipData(bits, litlen, dist);
      blocks.push({ final, type: 'dynamic', litlenCount, distCount, runs });
    } else {
      throw new Error('block type 3');
    }
  }
  if (bits.position > 8 * stream.length) throw new Error('DEFLATE stream truncated');
  return { blocks, endBit: bits.position };
}

/** A least-significant-bit-first writer. */
export class BitWriter {
  private readonly bytes: number[] = [];
  private count = 0;

  /** An n-bit number, least significant bit first. */
  number(value: number, n: number): this {
    for (let i = 0; i < n; i++, this.count++) {
      if (this.count % 8 === 0) this.bytes.push(0);
      this.bytes[this.bytes.length - 1]! |= ((value >> i) & 1) << (this.count % 8);
    }
    return this;
  }

  /** A Huffman codeword, most significant bit first. */
  codeword(word: { code: number; length: number } | undefined): this {
    if (!word) throw new Error('no codeword for that symbol');
    for (let i = word.length - 1; i >= 0; i--) this.number((word.code >> i) & 1, 1);
    return this;
  }

  align(): this {
    return this.number(0, (8 - (this.count % 8)) % 8);
  }

  bytesWritten(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

/**
 * One stream of several blocks: each part a complete one-block raw DEFLATE stream (its final bit
 * cleared unless it is the last part) or the bytes of a stored block.
 */
export function joinBlocks(parts: ReadonlyArray<{ stream: Uint8Array } | { stored: Uint8Array }>): Uint8Array {
  const out = new BitWriter();
  parts.forEach((part, i) => {
    const final = i === parts.length - 1 ? 1 : 0;
    if ('stored' in part) {
      out.number(final, 1).number(0, 2).align().number(part.stored.length, 16).number(part.stored.length ^ 0xffff, 16);
      part.stored.forEach((byte) => out.number(byte, 8));
      return;
    }
    const { blocks, endBit } = readDeflate(part.stream);
    if (blocks.length !== 1) throw new Error('joinBlocks takes one-block streams');
    const bits = new Bits(part.stream);
    out.number(final, 1);
    bits.position = 1;
    while (bits.position < endBit) out.number(bits.bit(), 1);
  });
  return out.bytesWritten();
}

/** A hand-made dynamic block: its codes, the header items that send their lengths, and literal data. */
export interface HandmadeBlock {
  readonly litlen: readonly number[];
  readonly dist: readonly number[];
  /** The precode's lengths, indexed by code-length symbol (0-18). */
  readonly precode: readonly number[];
  /** Code-length items in order: a length (0-15), or 16, 17, 18 with their repeat count. */
  readonly items: ReadonlyArray<number | { symbol: 16 | 17 | 18; count: number }>;
  /** Literal/length symbols of the data, literals only, ending with 256. */
  readonly data: readonly number[];
}

/** A one-block raw DEFLATE stream written exactly as `block` says, right or wrong. */
export function dynamicBlockStream(block: HandmadeBlock): Uint8Array {
  const out = new BitWriter().number(1, 1).number(2, 2);
  out.number(block.litlen.length - 257, 5).number(block.dist.length - 1, 5).number(19 - 4, 4);
  for (const symbol of PRECODE_ORDER) out.number(block.precode[symbol] ?? 0, 3);
  const precode = codewords(block.precode);
  for (const item of block.items) {
    if (typeof item === 'number') {
      out.codeword(precode[item]);
      continue;
    }
    out.codeword(precode[item.symbol]);
    if (item.symbol === 18) out.number(item.count - 11, 7);
    else out.number(item.count - 3, item.symbol === 16 ? 2 : 3);
  }
  const litlen = codewords(block.litlen);
  for (const symbol of block.data) out.codeword(litlen[symbol]);
  return out.align().bytesWritten();
}

#!/usr/bin/env node
// Rebuilds every committed WebAssembly artifact in wasm/dist/ and its manifest.
//
//   node wasm/build.mjs                      build all, rewrite wasm/dist/manifest.json
//   node wasm/build.mjs --only zstd,kernels  build some, keep the other manifest entries
//   node wasm/build.mjs --check              rebuild in a temp dir, compare with the manifest
//
// C modules (zstd, lz4, deflate) are compiled with Emscripten from the upstream
// release tarballs of Debian 12 source packages, downloaded at build time with
// `apt-get source` into wasm/.cache/ and checked against wasm/sources.json, so no
// third-party C code lives in this repository. The AssemblyScript kernels are
// built with the asc pinned in package.json. Plain Node ESM without dependencies.
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const WASM = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(WASM);
const CACHE = path.join(WASM, '.cache');
const DIST = path.join(WASM, 'dist');
const SOURCES = JSON.parse(fs.readFileSync(path.join(WASM, 'sources.json'), 'utf8'));
const APT_SOURCE_FILE = '/etc/apt/sources.list.d/multifd-deb-src.sources';

// Flags recorded verbatim in the manifest. No -g and a -ffile-prefix-map per
// source tree (added in compile(), not recorded: it names local paths) keep the
// output byte-identical wherever the tree is checked out. -flto was measured
// and dropped: no faster (DEFLATE decoding 4-6 % slower) and slower to build.
const FLAGS = {
  cflags: ['-O3', '-DNDEBUG'],
  simd: ['-msimd128'],
  ldflags: ['-O3', '--no-entry', '-sSTANDALONE_WASM', '-sFILESYSTEM=0', '-sALLOW_MEMORY_GROWTH=1'],
};

// Per module: the upstream files it needs and nothing else (no zstd legacy
// decoders, dictionary builder or multithreading; no libdeflate gzip/zlib
// decoders, whose framing deflate.c parses itself).
const MODULES = {
  zstd: {
    package: 'libzstd',
    include: ['lib'],
    defines: ['-DZSTD_LEGACY_SUPPORT=0', '-DZSTD_TRACE=0'], // no legacy formats; no weak trace hooks (would-be imports)
    // Neither zstd nor lz4 has wasm SIMD code of its own; what -msimd128 adds is
    // clang's loop vectorizer, which slows their decoders (zstd ~25 %, lz4 ~6 %:
    // short copies pay for vector prologues and overlap checks) and does not
    // speed up their encoders. libdeflate's encoder gains 20-80 % from it.
    simdFlags: ['-fno-vectorize'],
    files: [
      'common/entropy_common.c', 'common/error_private.c', 'common/fse_decompress.c', 'common/xxhash.c',
      'common/zstd_common.c', 'compress/fse_compress.c', 'compress/hist.c', 'compress/huf_compress.c',
      'compress/zstd_compress.c', 'compress/zstd_compress_literals.c', 'compress/zstd_compress_sequences.c',
      'compress/zstd_compress_superblock.c', 'compress/zstd_double_fast.c', 'compress/zstd_fast.c',
      'compress/zstd_lazy.c', 'compress/zstd_ldm.c', 'compress/zstd_opt.c', 'decompress/huf_decompress.c',
      'decompress/zstd_ddict.c', 'decompress/zstd_decompress.c', 'decompress/zstd_decompress_block.c',
    ].map((f) => `lib/${f}`),
  },
  lz4: {
    package: 'lz4',
    include: ['lib'],
    defines: [],
    simdFlags: ['-fno-vectorize'], // see zstd
    files: ['lib/lz4.c', 'lib/lz4frame.c', 'lib/lz4hc.c', 'lib/xxhash.c'],
  },
  deflate: {
    package: 'libdeflate',
    include: ['.'],
    defines: [],
    files: ['lib/adler32.c', 'lib/crc32.c', 'lib/deflate_compress.c', 'lib/deflate_decompress.c', 'lib/utils.c', 'lib/zlib_compress.c'],
    ownFiles: ['deflate_iaa.c'], // our C besides mf_common.c and deflate.c
  },
};
const KERNELS = 'kernels';
const ALL = [...Object.keys(MODULES), KERNELS];

const { values: opts } = parseArgs({ options: { check: { type: 'boolean' }, only: { type: 'string' } } });
const selected = opts.only ? opts.only.split(',').map((s) => s.trim()).filter(Boolean) : ALL;
for (const name of selected) if (!ALL.includes(name)) fail(`--only: unknown artifact group '${name}' (known: ${ALL.join(', ')})`);

function fail(message) {
  console.error(`wasm/build.mjs: ${message}`);
  process.exit(1);
}

const sha256 = (file) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

// clang runs any `wasm-opt` it finds on PATH after linking, and `npm run` puts
// node_modules/.bin first, whose wasm-opt (binaryen from npm, via assemblyscript) is not
// Debian's: the output would then depend on how the build was started. Tools run with the
// node_modules folders taken off PATH, so `npm run build:wasm` and `node wasm/build.mjs`
// produce the same bytes.
const TOOL_ENV = {
  ...process.env,
  PATH: (process.env.PATH ?? '').split(path.delimiter).filter((dir) => !dir.split(path.sep).includes('node_modules')).join(path.delimiter),
};

function run(cmd, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: TOOL_ENV, ...options });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(output) : reject(new Error(`${cmd} ${args.join(' ')}\n${output}`))));
  });
}

// emcc spends most of a small compile starting Python, so files compile in parallel.
const slots = Math.max(1, os.availableParallelism());
let busy = 0;
const waiting = [];
async function limited(task) {
  if (busy >= slots) await new Promise((resolve) => waiting.push(resolve));
  busy++;
  try {
    return await task();
  } finally {
    busy--;
    waiting.shift()?.();
  }
}

function toolVersions() {
  let emcc;
  try {
    emcc = execFileSync('emcc', ['--version'], { encoding: 'utf8', env: TOOL_ENV }).split('\n')[0].trim();
  } catch {
    fail('emcc not found. Install Emscripten with: apt-get install emscripten (Debian 12 ships 3.1.6)');
  }
  const ascPackage = path.join(ROOT, 'node_modules/assemblyscript/package.json');
  const asc = fs.existsSync(ascPackage) ? JSON.parse(fs.readFileSync(ascPackage, 'utf8')).version : null;
  return { emcc, asc };
}

// ---- sources ---------------------------------------------------------------

// apt-get source needs a deb-src entry. Reuse the mirror and keyring of the
// system's own Debian entry so the download is verified by apt like any package.
function ensureDebSrc() {
  if (fs.existsSync(APT_SOURCE_FILE)) return;
  if (process.getuid?.() !== 0) fail(`no deb-src entry; as root, create ${APT_SOURCE_FILE} (Types: deb-src, ${SOURCES.suite} main) and run apt-get update`);
  const system = fs.existsSync('/etc/apt/sources.list.d/debian.sources') ? fs.readFileSync('/etc/apt/sources.list.d/debian.sources', 'utf8') : '';
  const field = (name, fallback) => system.match(new RegExp(`^${name}:\\s*(.+)$`, 'm'))?.[1].trim() ?? fallback;
  const stanza = [
    'Types: deb-src',
    `URIs: ${field('URIs', 'http://deb.debian.org/debian')}`,
    `Suites: ${SOURCES.suite}`,
    'Components: main',
    `Signed-By: ${field('Signed-By', '/usr/share/keyrings/debian-archive-keyring.gpg')}`,
  ];
  fs.writeFileSync(APT_SOURCE_FILE, stanza.join('\n') + '\n');
  console.log(`wrote ${APT_SOURCE_FILE}; apt-get update`);
  execFileSync('apt-get', ['update'], { stdio: 'inherit' });
}

// Returns the directory holding the extracted upstream tree of one package.
async function ensureSource(pkgName) {
  const pkg = SOURCES.packages[pkgName];
  const archive = path.join(CACHE, pkg.archive);
  fs.mkdirSync(CACHE, { recursive: true });
  if (!fs.existsSync(archive)) {
    ensureDebSrc();
    // Download into a scratch dir: apt-get also fetches the .dsc and Debian's
    // patches, which are not used; only the upstream tarball is kept.
    const scratch = fs.mkdtempSync(path.join(CACHE, 'apt-'));
    const sandbox = process.getuid?.() === 0 ? ['-o', 'APT::Sandbox::User=root'] : [];
    console.log(`apt-get source --download-only ${pkgName}=${pkg.version}`);
    try {
      await run('apt-get', [...sandbox, 'source', '--download-only', `${pkgName}=${pkg.version}`], { cwd: scratch });
    } catch (err) {
      fail(`could not download ${pkgName} ${pkg.version} (is the deb-src index current? try apt-get update)\n${err.message}`);
    }
    fs.renameSync(path.join(scratch, pkg.archive), archive);
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  const actual = sha256(archive);
  if (actual !== pkg.sha256) fail(`sha256 mismatch for ${archive}\n  expected ${pkg.sha256}\n  got      ${actual}\nDelete the file to re-download; if it persists, the archive changed upstream.`);
  const dir = path.join(CACHE, 'src', `${pkgName}-${pkg.version}`);
  const stamp = path.join(dir, '.multifd-extracted');
  if (!fs.existsSync(stamp) || fs.readFileSync(stamp, 'utf8') !== pkg.sha256) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
    await run('tar', ['-xf', archive, '-C', dir, '--strip-components=1']);
    fs.writeFileSync(stamp, pkg.sha256);
  }
  return dir;
}

// ---- C modules ---------------------------------------------------------------

// The exported C functions are those marked MF_EXPORT in our own sources, so the
// export list cannot drift from the C code.
function exportedFunctions(ownFiles) {
  const names = ownFiles.flatMap((f) => [...fs.readFileSync(f, 'utf8').matchAll(/^MF_EXPORT[^(]*?\b(mf_\w+)\(/gm)].map((m) => m[1]));
  return names.map((n) => `_${n}`).join(',');
}

async function buildModule(name, outDir, objDir) {
  const mod = MODULES[name];
  const upstream = await ensureSource(mod.package);
  const own = ['mf_common.c', `${name}.c`, ...(mod.ownFiles ?? [])].map((f) => path.join(WASM, 'c', f));
  const sources = [
    ...mod.files.map((f) => ({ file: path.join(upstream, f), root: upstream, label: mod.package })),
    ...own.map((file) => ({ file, root: path.join(WASM, 'c'), label: 'wasm/c' })),
  ];
  const includes = mod.include.map((dir) => `-I${path.join(upstream, dir)}`);
  const pkg = SOURCES.packages[mod.package];
  const origin = [{ package: mod.package, version: pkg.version, archive: pkg.archive, sha256: pkg.sha256 }];

  const variant = async (simd) => {
    const file = `${name}${simd ? '.simd' : ''}.wasm`;
    const cflags = [...FLAGS.cflags, ...(simd ? [...FLAGS.simd, ...(mod.simdFlags ?? [])] : []), ...mod.defines, ...includes];
    const dir = path.join(objDir, file);
    fs.mkdirSync(dir, { recursive: true });
    // Object names carry their origin: upstream lz4 has an lz4.c just like ours.
    const objects = await Promise.all(sources.map(({ file: src, root, label }, i) => limited(async () => {
      const obj = path.join(dir, `${i}-${label.replace(/\W/g, '_')}-${path.basename(src, '.c')}.o`);
      await run('emcc', [...cflags, `-ffile-prefix-map=${root}=${label}`, '-c', src, '-o', obj]);
      return obj;
    })));
    const out = path.join(outDir, file);
    const ldflags = [...FLAGS.ldflags, ...(simd ? FLAGS.simd : []), `-sEXPORTED_FUNCTIONS=${exportedFunctions(own)}`];
    await limited(() => run('emcc', [...ldflags, ...objects, '-o', out], { cwd: dir }));
    return { file, path: out, simd, sources: origin };
  };
  return Promise.all([variant(true), variant(false)]);
}

// ---- AssemblyScript kernels --------------------------------------------------

async function buildKernels(outDir) {
  const asc = path.join(ROOT, 'node_modules/.bin/asc');
  if (!fs.existsSync(asc)) fail('node_modules/.bin/asc not found; run npm ci first');
  const config = JSON.parse(fs.readFileSync(path.join(ROOT, 'asconfig.json'), 'utf8'));
  for (const entry of config.entries) if (!fs.existsSync(path.join(ROOT, entry))) fail(`AssemblyScript entry ${entry} (from asconfig.json) is missing`);
  const artifacts = [];
  for (const [target, simd] of [['simd', true], ['scalar', false]]) {
    const file = path.basename(config.targets[target].outFile);
    const out = path.join(outDir, file);
    await limited(() => run(asc, ['--config', 'asconfig.json', '--target', target, '--outFile', out], { cwd: ROOT }));
    artifacts.push({ file, path: out, simd, sources: [] });
  }
  return artifacts;
}

// ---- main --------------------------------------------------------------------

async function buildAll(outDir) {
  const objDir = fs.mkdtempSync(path.join(os.tmpdir(), 'multifd-wasm-obj-'));
  try {
    const groups = await Promise.all(selected.map((name) => (name === KERNELS ? buildKernels(outDir) : buildModule(name, outDir, objDir))));
    return groups.flat().map((a) => ({ ...a, bytes: fs.statSync(a.path).size, sha256: sha256(a.path) }));
  } finally {
    fs.rmSync(objDir, { recursive: true, force: true });
  }
}

const manifestEntry = ({ file, bytes, sha256: hash, simd, sources }) => ({ file, bytes, sha256: hash, simd, sources });
const manifestPath = path.join(DIST, 'manifest.json');
const readManifest = () => (fs.existsSync(manifestPath) ? JSON.parse(fs.readFileSync(manifestPath, 'utf8')) : null);
const toolchain = (versions) => ({ ...versions, flags: { ...FLAGS, modules: Object.fromEntries(Object.entries(MODULES).map(([n, m]) => [n, { defines: m.defines, simd: m.simdFlags ?? [] }])), asc: ['--config', 'asconfig.json', '--target', 'simd|scalar'] } });

async function check() {
  const manifest = readManifest();
  if (!manifest) fail(`${path.relative(ROOT, manifestPath)} does not exist; build first`);
  const versions = toolVersions();
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'multifd-wasm-check-'));
  const started = Date.now();
  try {
    const built = await buildAll(outDir);
    const problems = [];
    for (const artifact of built) {
      const entry = manifest.artifacts.find((a) => a.file === artifact.file);
      const committed = path.join(DIST, artifact.file);
      if (!entry) problems.push(`${artifact.file}: not in the manifest`);
      else if (entry.sha256 !== artifact.sha256) problems.push(`${artifact.file}: rebuilt sha256 ${artifact.sha256} != manifest ${entry.sha256}`);
      if (!fs.existsSync(committed)) problems.push(`${artifact.file}: missing from wasm/dist/`);
      else if (entry && sha256(committed) !== entry.sha256) problems.push(`${artifact.file}: wasm/dist copy sha256 ${sha256(committed)} != manifest ${entry.sha256}`);
    }
    for (const p of problems) console.error(`MISMATCH ${p}`);
    if (problems.length) {
      for (const tool of ['emcc', 'asc']) if (manifest.toolchain[tool] !== versions[tool]) console.error(`note: manifest was built with ${tool} '${manifest.toolchain[tool]}', this machine has '${versions[tool]}'`);
      process.exit(1);
    }
    console.log(`wasm/build.mjs --check: ${built.length} artifacts match wasm/dist/manifest.json (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
}

async function build() {
  const versions = toolVersions();
  fs.mkdirSync(DIST, { recursive: true });
  const started = Date.now();
  const built = await buildAll(DIST);
  // --only replaces just the rebuilt entries; the order of ALL keeps the file stable.
  const previous = opts.only ? (readManifest()?.artifacts ?? []) : [];
  const byFile = new Map(previous.map((a) => [a.file, a]));
  for (const a of built) byFile.set(a.file, manifestEntry(a));
  const order = (file) => ALL.indexOf(file.split('.')[0]) * 2 + (file.includes('.simd.') ? 0 : 1);
  const artifacts = [...byFile.values()].sort((a, b) => order(a.file) - order(b.file));
  const manifest = { toolchain: toolchain(versions), artifacts };
  fs.writeFileSync(manifestPath, JSON.stringify(manifest, null, 2) + '\n');
  for (const a of built) console.log(`${a.file.padEnd(20)} ${String(a.bytes).padStart(8)} B  ${a.sha256}`);
  console.log(`built ${built.length} artifacts in ${((Date.now() - started) / 1000).toFixed(1)} s; wrote ${path.relative(ROOT, manifestPath)}`);
}

await (opts.check ? check() : build()).catch((err) => fail(err.stack ?? String(err)));

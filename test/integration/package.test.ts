// The npm package as a user gets it: `npm pack` (whose prepack builds the linux-x64 prebuild
// and cross-compiles the linux-arm64 one), what the tarball holds, and an install into an empty
// project with no compiler on PATH whose `multifd codecs` runs the hardware codecs on the
// prebuilt shim, with the real vendor libraries of native/vendor-build where they are built
// (npm run build:vendor-libs). Needs gcc, aarch64-linux-gnu-gcc and `file` (skipped, saying
// which apt packages to install, without them; CI installs them), and the npm registry or
// npm's cache for piscina and node-gyp-build.
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import type { HardwareVendor } from '../../src/native/addon.js';
import { packageRoot } from '../../src/wasm/load.js';
import { VENDORS } from '../helpers/hardware.js';
import { useTempDir } from '../helpers/support.js';
import { VENDOR_BUILD, VENDOR_LIBRARY } from '../helpers/vendor-libraries.js';

const root = packageRoot();
const vendorLib = join(VENDOR_BUILD, 'lib');
const missingVendorLibs = VENDORS.map((vendor) => VENDOR_LIBRARY[vendor]).filter((file) => !existsSync(file));

/** What packing and checking need on PATH: the prebuild's compilers and `file`. */
const TOOLS: Record<string, string> = { gcc: 'build-essential', 'aarch64-linux-gnu-gcc': 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross', file: 'file' };
const missingTools = Object.keys(TOOLS).filter((tool) => spawnSync('/bin/sh', ['-c', `command -v ${tool}`]).status !== 0);

const test = suite('npm package');
// Like the hardware tests without gcc: skipped, saying what to install (CI installs it).
const packing = missingTools.length ? test.skip : test;
if (missingTools.length) console.log(`  skipped: npm pack needs ${missingTools.join(', ')} (apt-get install ${missingTools.map((tool) => TOOLS[tool]).join(' ')})`);
const temp = useTempDir(test, 'package');
let tarball = '';

/** This process's environment less npm's script variables (an outer `npm test`'s) and our settings. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(npm_|MULTIFD_)/i.test(name) && name !== 'PREBUILDS_ONLY'));
  return { ...env, ...extra };
}

function run(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  return spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
}

/** The last lines of a run's output, for a failed assertion. */
const tail = (result: SpawnSyncReturns<string>) => `${result.stderr}\n${result.stdout}`.trim().split('\n').slice(-15).join('\n');

/** npm's own entry script, found on PATH as a user's shell would. */
function npmCli(): string {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'npm'))) return realpathSync(join(dir, 'npm'));
  }
  throw new Error('npm is not on PATH');
}

/** A folder holding only `node` and `npm` (symlinks), to be a whole PATH: no gcc, cc, make or python. */
function bareBin(): string {
  const dir = temp.path('bin');
  if (!existsSync(dir)) {
    mkdirSync(dir);
    symlinkSync(process.execPath, join(dir, 'node'));
    symlinkSync(npmCli(), join(dir, 'npm'));
  }
  return dir;
}

interface CodecLine {
  id: string;
  backend: { name: string; available: boolean; reason: string };
}

/** The installed package's `multifd codecs --json` on the bare PATH, its hardware codecs by vendor. */
function installedCodecs(libraries: Record<HardwareVendor, string>): Record<HardwareVendor, CodecLine> {
  const env = cleanEnv({ PATH: bareBin(), MULTIFD_QATZIP_LIB: libraries.qatzip, MULTIFD_QPL_LIB: libraries.qpl, MULTIFD_UADK_LIB: libraries.uadk });
  const result = run(join(temp.path('project'), 'node_modules', '.bin', 'multifd'), ['codecs', '--json'], { env });
  assert.is(result.status, 0, tail(result));
  const lines = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as CodecLine);
  return Object.fromEntries(VENDORS.map((vendor) => [vendor, lines.find((line) => line.id === vendor)!])) as Record<HardwareVendor, CodecLine>;
}

packing('npm pack builds both prebuilds and ships them with the C sources, the build files, LICENSE and only the package\'s own declarations', () => {
  const packed = run('npm', ['pack', '--json', '--pack-destination', temp.path('')], { cwd: root, env: cleanEnv() });
  // The prebuild script names the missing compiler and its apt package; show that line first.
  const why = packed.stderr.split('\n').find((line) => line.includes('prebuild-native.mjs:'));
  assert.is(packed.status, 0, `npm pack failed: ${why ?? tail(packed)}`);
  const [pack] = JSON.parse(packed.stdout) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
  tarball = temp.path(pack!.filename);
  const files = pack!.files.map((file) => file.path);
  for (const file of [
    'LICENSE',
    'prebuilds/linux-x64/multifd_native.napi.glibc.node',
    'prebuilds/linux-arm64/multifd_native.napi.glibc.node',
    'native/binding.gyp',
    'native/build.mjs',
    'native/multifd_native.c',
    'native/vendor-abi.h',
    'dist/types/src/index.d.ts',
    'wasm/dist/manifest.json',
  ]) {
    assert.ok(files.includes(file), `${file} is not in the tarball`);
  }
  const strays = files.filter((file) => /^(native\/(test-fakes|build|vendor-build)\/|dist\/types\/(?!src\/)|dist\/types\/src\/cli\/|src\/|test\/|benchmarks\/)/.test(file));
  assert.equal(strays, [], 'the tarball holds files a user does not need');
});

packing('the arm64 prebuild is an aarch64 binary and the x64 one an x86-64 binary (file)', () => {
  for (const [arch, machine] of [['arm64', 'aarch64'], ['x64', 'x86-64']] as const) {
    const dir = join(root, 'prebuilds', `linux-${arch}`);
    const binaries = existsSync(dir) ? readdirSync(dir).filter((name) => name.endsWith('.node')) : [];
    assert.equal(binaries.length, 1, `one .node file in ${dir}`);
    const described = run('file', ['-b', join(dir, binaries[0]!)]);
    assert.is(described.status, 0, `file failed (apt-get install file): ${tail(described)}`);
    assert.match(described.stdout, machine);
    assert.match(described.stdout, 'shared object');
  }
});

packing('the tarball installs into an empty project with no compiler on PATH and its multifd codecs loads the prebuilt shim', () => {
  assert.ok(tarball, 'npm pack failed above');
  const env = cleanEnv({ PATH: bareBin() });
  const found = run('/bin/sh', ['-c', 'for c in gcc cc make python3 python node-gyp node; do command -v $c; done'], { env });
  assert.is(found.stdout.trim(), join(bareBin(), 'node'), 'the bare PATH has a compiler on it');
  const project = temp.path('project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'empty-project', version: '1.0.0', private: true }));
  // The registry is reachable, but the dependencies usually come from npm's cache.
  const installed = run(join(bareBin(), 'npm'), ['install', '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: project, env });
  assert.is(installed.status, 0, `npm install failed: ${tail(installed)}`);
  const multifd = join(project, 'node_modules', 'multifd');
  assert.ok(existsSync(join(multifd, 'prebuilds', 'linux-x64', 'multifd_native.napi.glibc.node')), 'the x64 prebuild is installed');
  assert.not.ok(existsSync(join(multifd, 'native', 'build')), 'the install built the shim');
  assert.is(JSON.parse(readFileSync(join(project, 'node_modules', 'node-gyp-build', 'package.json'), 'utf8')).version, '4.8.4');
  // Libraries that do not exist: the shim, and only the shim, tries each path and says so.
  const absent = Object.fromEntries(VENDORS.map((vendor) => [vendor, temp.path(`absent/${basename(VENDOR_LIBRARY[vendor])}`)])) as Record<HardwareVendor, string>;
  const codecs = installedCodecs(absent);
  for (const vendor of VENDORS) {
    const { backend } = codecs[vendor];
    assert.ok(backend.reason.includes(absent[vendor]), `${vendor}: the shim did not probe ${absent[vendor]}: ${backend.reason}`);
    assert.not.match(backend.reason, 'native shim', `${vendor}: ${backend.reason}`);
  }
});

const withVendorLibs = missingVendorLibs.length ? test.skip : packing;
if (missingVendorLibs.length) console.log(`  skipped: the real vendor libraries are not built (npm run build:vendor-libs): ${missingVendorLibs.join(', ')}`);

withVendorLibs('the installed multifd codecs runs qatzip, qpl and uadk on the native shim with the real vendor libraries found', () => {
  assert.ok(tarball && existsSync(temp.path('project/node_modules/multifd')), 'the install failed above');
  const codecs = installedCodecs(VENDOR_LIBRARY);
  for (const vendor of VENDORS) {
    const { backend } = codecs[vendor];
    // native-hw or native-sw-fallback: the library loaded with every symbol (no device here).
    assert.match(backend.name, /^native-/, `${vendor}: ${backend.name}: ${backend.reason}`);
    assert.ok(backend.reason.includes(vendorLib), `${vendor}: not the library in ${vendorLib}: ${backend.reason}`);
  }
});

test.run();

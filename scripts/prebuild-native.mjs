// `npm run prebuild:native`, and `npm pack`'s prepack: builds the hardware shim for every
// platform the package carries a prebuild for, from the C sources the package ships, into
// prebuilds/<platform>-<arch>/ (git-ignored), where node-gyp-build finds it at run time.
//
//   linux-x64    gcc                     (Debian: build-essential)
//   linux-arm64  aarch64-linux-gnu-gcc   (Debian: apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
//
// On an arm64 machine the roles swap (x86_64-linux-gnu-gcc from gcc-x86-64-linux-gnu and
// libc6-dev-amd64-cross). Node-API is ABI-stable, so one build per architecture serves every
// Node version from 20 on; the files are tagged `napi` and `glibc` (node-gyp-build skips them
// on musl). Offline: Node's own headers (include/node beside the running node), no download.
// Each build runs node-gyp in a fresh copy of the shipped sources, so it proves they are
// complete and never touches native/build/ (a developer's `npm run build:native`).
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readdirSync, readSync, rmSync, statSync } from 'node:fs';
import { arch as hostArch, platform, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { localNodeHeaders, nativeDir, runNodeGyp } from '../native/build.mjs';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
/** The file name node-gyp-build matches: any Node version through Node-API, glibc only. */
const PREBUILD_NAME = 'multifd_native.napi.glibc.node';

/** Each target: its GNU triplet (the cross gcc's prefix), Debian's cross packages, ELF e_machine. */
const TARGETS = {
  x64: { triplet: 'x86_64-linux-gnu', crossPackages: 'gcc-x86-64-linux-gnu libc6-dev-amd64-cross', elfMachine: 62 },
  arm64: { triplet: 'aarch64-linux-gnu', crossPackages: 'gcc-aarch64-linux-gnu libc6-dev-arm64-cross', elfMachine: 183 },
};

/** Why `cc` cannot build the shim (absent, or without its C library's headers), or undefined. */
function compilerProblem(cc) {
  const run = spawnSync(cc, ['-E', '-x', 'c', '-'], { input: '#include <dlfcn.h>\n#include <stdint.h>\n', encoding: 'utf8' });
  if (run.error) return `${cc} not found`;
  if (run.status !== 0) return `${cc} cannot find its C library headers: ${run.stderr.trim().split('\n')[0]}`;
  return undefined;
}

/** The ELF header's e_machine of a built file, so a mis-targeted build fails the pack. */
function elfMachine(file) {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, 20, 0);
  } finally {
    closeSync(fd);
  }
  return header.readUInt16LE(18);
}

/** Builds one target in a scratch copy of the sources and returns the prebuild's path. */
function prebuild({ arch, cc, elfMachine: machine }, sources) {
  const stage = mkdtempSync(join(tmpdir(), `multifd-prebuild-${arch}-`));
  try {
    for (const name of sources) copyFileSync(join(nativeDir, name), join(stage, name));
    // -s: no symbol table in the shipped file; `npm run build:native` keeps it for debugging.
    // make's output goes to stderr, so that `npm pack --json` prints JSON alone on stdout.
    if (runNodeGyp({ dir: stage, arch, cc, ldflags: '-s', loglevel: 'warn', stdio: ['ignore', 2, 2] }) !== 0) throw new Error(`node-gyp failed for linux-${arch} (${cc})`);
    const built = join(stage, 'build', 'Release', 'multifd_native.node');
    if (elfMachine(built) !== machine) throw new Error(`${cc} built a file for ELF machine ${elfMachine(built)}, not linux-${arch} (${machine})`);
    const outDir = join(root, 'prebuilds', `linux-${arch}`);
    mkdirSync(outDir, { recursive: true });
    copyFileSync(built, join(outDir, PREBUILD_NAME));
    return join(outDir, PREBUILD_NAME);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function main() {
  if (platform() !== 'linux') throw new Error(`prebuilds are made on Linux (this is ${platform()})`);
  if (!TARGETS[hostArch()]) throw new Error(`no prebuild plan for a ${hostArch()} host (x64 or arm64)`);
  if (!localNodeHeaders()) throw new Error(`Node's headers are not beside ${process.execPath} (include/node/node_api.h); prebuilds stay offline and do not download them`);
  const plan = Object.entries(TARGETS).map(([arch, target]) => ({ arch, ...target, cc: arch === hostArch() ? 'gcc' : `${target.triplet}-gcc` }));
  for (const { arch, cc, crossPackages } of plan) {
    const problem = compilerProblem(cc);
    if (problem) throw new Error(`${problem}, needed for the linux-${arch} prebuild: apt-get install ${arch === hostArch() ? 'build-essential' : crossPackages}`);
  }
  // The shipped build inputs: binding.gyp and the top-level C files (not test-fakes/, not build/).
  const sources = readdirSync(nativeDir).filter((name) => name === 'binding.gyp' || /\.[ch]$/.test(name));
  rmSync(join(root, 'prebuilds'), { recursive: true, force: true });
  for (const target of plan) {
    const file = prebuild(target, sources);
    console.error(`prebuilt ${file.slice(root.length + 1)}: ${statSync(file).size} bytes (${target.cc})`);
  }
}

try {
  main();
} catch (error) {
  console.error(`scripts/prebuild-native.mjs: ${error.message}`);
  process.exitCode = 1;
}

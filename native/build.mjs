// Builds the hardware shim with node-gyp from this folder's C sources, which the npm package
// ships so that platforms without a prebuild (prebuilds/, made by scripts/prebuild-native.mjs
// at pack time) can build their own:
//
//   npm run build:native        in a clone, or in node_modules/multifd of an installed package
//
// writes native/build/Release/multifd_native.node, which the loader (src/native/load-addon.ts)
// prefers to a prebuild. node-gyp is the one pinned in devDependencies (12.4.0) in a clone, else
// the one npm bundles and names in npm_config_node_gyp while it runs a script. Node's headers
// come from the running Node's own install prefix when it has them (Debian's nodejs and the
// nodejs.org tarballs both do), so node-gyp downloads nothing; without them it fetches the
// headers of this Node version.
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** This folder: the sources and binding.gyp. */
export const nativeDir = dirname(fileURLToPath(import.meta.url));

/** The running Node's install prefix when it holds node_api.h, else undefined. */
export function localNodeHeaders() {
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

/** The node-gyp to run: the pinned devDependency, else npm's own; undefined when neither is there. */
export function findNodeGyp() {
  try {
    return createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    const bundled = process.env.npm_config_node_gyp;
    return bundled && existsSync(bundled) ? bundled : undefined;
  }
}

/**
 * Runs `node-gyp rebuild` in `dir` (a folder holding binding.gyp and the sources), leaving
 * build/Release/multifd_native.node there. `arch` (node-gyp's names: x64, arm64) and `cc` (a
 * C compiler such as aarch64-linux-gnu-gcc, which also links) cross-compile; `ldflags` are
 * added to the link; `loglevel` is node-gyp's (info, warn, silent); `stdio` is spawnSync's.
 * Returns node-gyp's exit status.
 */
export function runNodeGyp({ dir = nativeDir, arch, cc, ldflags, loglevel, stdio = 'inherit' } = {}) {
  const nodeGyp = findNodeGyp();
  if (!nodeGyp) throw new Error('node-gyp not found: run this through npm (npm run build:native), which brings its own, or install node-gyp');
  const headers = localNodeHeaders();
  const args = [nodeGyp, 'rebuild', ...(headers ? [`--nodedir=${headers}`] : []), ...(arch ? [`--arch=${arch}`] : []), ...(loglevel ? [`--loglevel=${loglevel}`] : [])];
  // gyp's Makefile links with $(CXX) unless LINK is set; the shim is plain C, so cc links too.
  const env = { ...process.env, ...(cc ? { CC: cc, CXX: cc, LINK: cc } : {}), ...(ldflags ? { LDFLAGS: ldflags } : {}) };
  return spawnSync(process.execPath, args, { cwd: dir, stdio, env }).status ?? 1;
}

// Run as a script (not imported by scripts/prebuild-native.mjs); realpath: an `npm link`ed copy.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  try {
    process.exit(runNodeGyp());
  } catch (error) {
    console.error(`native/build.mjs: ${error.message}`);
    process.exit(1);
  }
}

// Finds and loads the hardware shim's .node file with node-gyp-build, the loader of
// prebuildify-style packages, from two places under the package root, in this order:
//
//   native/build/Release/   a local build (`npm run build:native`): a developer's, or a user's
//                           on a platform without a prebuild, so it wins over a prebuild
//   prebuilds/linux-<arch>/ the prebuilds made at pack time (scripts/prebuild-native.mjs), of
//                           which node-gyp-build takes the one matching this platform, CPU and libc
//
// Loading never throws: each place that has no file or whose file does not load (another
// glibc, a broken build) leaves its reason, and the reasons become the one message that says
// why every hardware codec falls back to its WebAssembly path. node-gyp-build itself is
// required lazily, so a package without it still imports and runs on WebAssembly.
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** What loading found: the addon and its file, or why there is none. */
export interface AddonLoad<T> {
  readonly addon?: T;
  readonly file?: string;
  readonly failure?: string;
}

/** The part of node-gyp-build used here: the path of the .node file it would load from `dir`. */
interface NodeGypBuild {
  resolve(dir: string): string;
}

const firstLine = (error: unknown) => String((error as Error)?.message ?? error).split('\n')[0]!.trim();

/** Loads the shim from `root` (the package root): a local build, else the matching prebuild. */
export function loadAddon<T>(root: string): AddonLoad<T> {
  const require = createRequire(import.meta.url);
  let finder: NodeGypBuild;
  try {
    finder = require('node-gyp-build') as NodeGypBuild;
  } catch (error) {
    return { failure: `cannot load node-gyp-build, which finds the native shim: ${firstLine(error)}` };
  }
  const unloadable: string[] = [];
  let notFound = '';
  // native/ holds the local build (its build/Release); the root holds prebuilds/.
  for (const dir of [join(root, 'native'), root]) {
    let file: string;
    try {
      file = finder.resolve(dir);
    } catch (error) {
      notFound = firstLine(error);
      continue;
    }
    try {
      return { addon: require(file) as T, file };
    } catch (error) {
      unloadable.push(`cannot load the native shim ${file}: ${firstLine(error)}`);
    }
  }
  // node-gyp-build says "No native build was found for platform=linux arch=x64 … libc=glibc …".
  const target = notFound.replace(/^No native build was found for /, '');
  if (unloadable.length === 0) return { failure: `native shim not built (npm run build:native) and no prebuild in prebuilds/ for ${target}` };
  return { failure: `${unloadable.join('; ')} (a build for this machine: npm run build:native)` };
}

// `npm run build:native`: builds native/build/Release/multifd_native.node with the node-gyp
// pinned in devDependencies, offline. Node's headers come from the running Node's own install
// prefix when it has them (Debian's nodejs puts them in /usr/include/node), so node-gyp does
// not try to download them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const prefix = dirname(dirname(process.execPath));
const nodedir = existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
const nodeGyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
const run = spawnSync(process.execPath, [nodeGyp, 'rebuild', ...nodedir], { cwd: here, stdio: 'inherit' });
process.exit(run.status ?? 1);

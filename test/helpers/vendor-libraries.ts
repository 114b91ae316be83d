// The real vendor libraries that `npm run build:vendor-libs` (scripts/build-vendor-libs.sh)
// builds from the pinned archives in ../shared/vendor into native/vendor-build/, and the page
// content their tests send through them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { addonFailure, nativeAddon, type HardwareVendor } from '../../src/native/addon.js';
import { packageRoot } from '../../src/wasm/load.js';
import { makePages, PAGE_KINDS } from './pages.js';

/** The prefix the build script installs into. */
export const VENDOR_BUILD = join(packageRoot(), 'native', 'vendor-build');

/** Each vendor's library, by soname, in the build's lib/. */
export const VENDOR_LIBRARY: Record<HardwareVendor, string> = {
  qatzip: join(VENDOR_BUILD, 'lib', 'libqatzip.so.3'),
  qpl: join(VENDOR_BUILD, 'lib', 'libqpl.so.1'),
  uadk: join(VENDOR_BUILD, 'lib', 'libwd_comp.so.2'),
};

/**
 * The version each probe must report for the archives the script pins: QPL's own
 * (qpl_get_library_version), UADK's file name (libwd_comp.so.2.10.0), and QATzip 1.3.1's file
 * name, which carries its libtool version 5:0:2 (libqatzip.so.3.2.0): QATzip exports no release number.
 */
export const ARCHIVE_VERSION: Record<HardwareVendor, string> = { qatzip: '3.2.0', qpl: '1.6.0', uadk: '2.10.0' };

/** Why the real-library tests cannot run here (no shim, or no vendor build), or undefined. */
export function vendorLibrariesSkipReason(): string | undefined {
  if (!nativeAddon()) return addonFailure();
  const missing = Object.values(VENDOR_LIBRARY).filter((file) => !existsSync(file));
  if (missing.length > 0) return `${missing.join(', ')} not built (npm run build:vendor-libs)`;
  return undefined;
}

/** Periods of the repeated-pattern pages: a byte, short words, and runs as far back as a 4 KiB window reaches. */
const PATTERN_PERIODS = [1, 4, 13, 255, 1000, 2048, 4095];

/** One page per period, each the pattern `0, 1, … period-1` (times a seed-dependent step) repeated. */
export function patternPages(pageSize: number, seed = 1): Uint8Array[] {
  return PATTERN_PERIODS.map((period) => {
    const page = new Uint8Array(pageSize);
    for (let i = 0; i < pageSize; i++) page[i] = ((i % period) * (2 * seed + 1) + period) & 0xff;
    return page;
  });
}

/** Every page kind in one packet: `perKind` pages of each generated kind, then the repeated patterns. */
export function everyKindOfPage(pageSize: number, perKind = 4, seed = 1): Uint8Array[] {
  return [...PAGE_KINDS.flatMap((kind, k) => makePages(kind, perKind, pageSize, seed * 16 + k)), ...patternPages(pageSize, seed)];
}

// The hardware shim (native/multifd_native.c): a prebuild shipped in the package or a local
// `npm run build:native`, found by load-addon.ts under the package root, from the sources under
// tsx and from the bundle alike. Loading never throws: a missing or broken build is reported
// as the reason every hardware codec falls back to its WebAssembly software path.
import { packageRoot } from '../wasm/load.js';
import { loadAddon, type AddonLoad } from './load-addon.js';

/** The accelerator libraries the shim can drive, named as the codecs they serve. */
export type HardwareVendor = 'qatzip' | 'qpl' | 'uadk';

/** Every {@link HardwareVendor}. */
export const HARDWARE_VENDORS: readonly HardwareVendor[] = ['qatzip', 'qpl', 'uadk'];

/** What probing a vendor library found; `reason` says why in words a user can act on. */
export interface HardwareProbe {
  /** The library loaded with every symbol the shim calls. */
  readonly loaded: boolean;
  /**
   * And a device answered; or, for `qpl` with `MULTIFD_QPL_PATH=software`, libqpl's own
   * software path initialised (pages then count as library software, never as hardware).
   */
  readonly available: boolean;
  /** A device answered, whether or not the sessions use it. */
  readonly device: boolean;
  /** Why the device is (not) used, in words a user can act on. */
  readonly reason: string;
  /** The library file and its version, in words. */
  readonly detail: string;
  /** The file the dynamic loader resolved (symlinks followed); the path or soname asked for when it did not load. */
  readonly file: string;
  /**
   * The library's version: QPL's own (`qpl_get_library_version`); QATzip and UADK report none,
   * so the one in the resolved file's name (`libwd_comp.so.2.10.0`: `2.10.0`; for QATzip the
   * libtool version, not the release). Empty when unknown.
   */
  readonly version: string;
}

/** Per-page outcomes the shim writes into a status array. */
export const PageOutcome = {
  Hardware: 0,
  /** Done by the vendor library's own software path (QATzip's sw_backup, libqpl's software path). */
  LibrarySoftware: 1,
  /** The device refused the page: our software path must do it. */
  NeedsSoftware: 2,
} as const;

/** An open vendor session (one per worker and direction); freed with its JS object. */
export type NativeSession = object & { readonly __brand: 'NativeSession' };

/** The addon's functions (see the comment at the top of native/multifd_native.c). */
export interface NativeAddon {
  probe(vendor: HardwareVendor, library: string | null): HardwareProbe;
  /**
   * `librarySoftware` lets a QATzip session without a device run on QATzip's own software backup
   * (tests only: each call then leaks a pthread key in QATzip); without it such a session does
   * not open and the WASM codec does the work.
   */
  open(
    vendor: HardwareVendor,
    library: string | null,
    compress: boolean,
    level: number,
    pageSize: number,
    maxPages: number,
    requireHardware: boolean,
    librarySoftware?: boolean,
  ): NativeSession;
  /** Payload bytes written, or -1 when `out` is too small. */
  encode(session: NativeSession, pages: readonly Uint8Array[], out: Uint8Array, status: Int32Array): number;
  /** 0: applied; 1: pages marked NeedsSoftware remain (nothing written); 2: let software decode the whole payload. */
  decode(session: NativeSession, payload: Uint8Array, pages: readonly Uint8Array[], status: Int32Array): 0 | 1 | 2;
  /** After decode returned 1: writes the pages the device decoded. */
  apply(session: NativeSession, pages: readonly Uint8Array[], status: Int32Array): void;
  /** Frees the vendor session now instead of when its object is collected; later calls on it throw. */
  close(session: NativeSession): void;
  /** madvise(MADV_HUGEPAGE) on the view's whole pages; true when the kernel took it. */
  adviseHugePages(bytes: Uint8Array): boolean;
}

let loaded: AddonLoad<NativeAddon> | undefined;

/** The addon, or undefined with {@link addonFailure} saying why. */
export function nativeAddon(): NativeAddon | undefined {
  loaded ??= loadAddon<NativeAddon>(packageRoot());
  return loaded.addon;
}

/** Why {@link nativeAddon} returned undefined (empty once it loaded). */
export function addonFailure(): string {
  nativeAddon();
  return loaded?.failure ?? '';
}

/**
 * The vendor library to load: `library` when given, else MULTIFD_QATZIP_LIB, MULTIFD_QPL_LIB or
 * MULTIFD_UADK_LIB, else null for the soname (libqatzip.so.3, libqpl.so.1, libwd_comp.so.2).
 */
export function libraryPath(vendor: HardwareVendor, library?: string): string | null {
  return library ?? process.env[`MULTIFD_${vendor.toUpperCase()}_LIB`] ?? null;
}

/**
 * Loads (once per library per process; for `qpl`, once per `MULTIFD_QPL_PATH` value too) and
 * probes a vendor library. Never throws. Probing starts the vendor's user-space driver, so it
 * runs only when a hardware codec is used or listed.
 */
export function probeHardware(vendor: HardwareVendor, library?: string): HardwareProbe {
  const addon = nativeAddon();
  if (!addon) return { loaded: false, available: false, device: false, reason: addonFailure(), detail: '', file: '', version: '' };
  return addon.probe(vendor, libraryPath(vendor, library));
}

/**
 * Asks the kernel for transparent huge pages under `bytes` (fresh, untouched memory), as QEMU
 * does for guest RAM; false when the shim is not built or the kernel refused. Only speed
 * depends on it: a first touch of 2 MiB pages costs several times less than of 4 KiB pages.
 */
export function adviseHugePages(bytes: Uint8Array): boolean {
  return nativeAddon()?.adviseHugePages(bytes) ?? false;
}

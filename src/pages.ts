// Page-size facts shared by the kernels, the codecs and (later) the wire format.
import { outOfRange } from './errors.js';

/** Default page size in bytes (x86-64's target page, QEMU's `qemu_target_page_size()`). */
export const DEFAULT_PAGE_SIZE = 4096;

/** Guest bytes per full packet, QEMU's MULTIFD_PACKET_SIZE: 128 pages of 4 KiB. */
export const PACKET_BYTES = 512 * 1024;

/**
 * Checks a page size: a power of two from 4 KiB to 64 KiB.
 * @throws RangeError `ERR_OUT_OF_RANGE` naming `name`.
 */
export function checkPageSize(pageSize: number, name = 'pageSize'): void {
  if (!Number.isInteger(pageSize) || pageSize < 4096 || pageSize > 65536 || (pageSize & (pageSize - 1)) !== 0) {
    throw outOfRange(name, 'a power of two from 4096 to 65536', pageSize);
  }
}

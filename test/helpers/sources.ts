// Page sources for tests that watch how a migration walks them.
import type { PageSource } from '../../src/migration/source.js';

/** `source`, counting the window iterations opened and those closed again (return() included). */
export function countingSource(source: PageSource): PageSource & { opened: number; closed: number } {
  const counted = {
    pageSize: source.pageSize,
    blocks: source.blocks,
    opened: 0,
    closed: 0,
    async *windows() {
      counted.opened++;
      try {
        yield* source.windows();
      } finally {
        counted.closed++;
      }
    },
  };
  return counted;
}

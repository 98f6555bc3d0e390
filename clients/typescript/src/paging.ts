/** Walking Kavach's cursor-paged lists. */
import type { Page } from './types.js';

/** Kavach's largest page. */
export const maxPageLimit = 1000;

/** What to keep of a walk over every page. */
export interface CollectOptions<T> {
  /** Items per page; {@link maxPageLimit} when absent. */
  pageSize?: number;
  /** Kept items only (filters the sidecar does not apply). */
  keep?: (item: T) => boolean;
  /** Kept items to skip first. */
  offset?: number;
  /** Stop after this many kept items (all when absent). */
  limit?: number;
}

/**
 * Fetches pages (each of at most `limit` items, the sidecar's largest page
 * when absent) until the last page or until enough items are kept.
 */
export async function collect<T>(
  page: (cursor: string | undefined, limit: number) => Promise<Page<T>>,
  o: CollectOptions<T> = {},
): Promise<T[]> {
  const out: T[] = [];
  let skip = o.offset ?? 0;
  let cursor: string | undefined;
  for (;;) {
    // Ask for no more than is still wanted when nothing is filtered out here.
    const size = o.pageSize ?? maxPageLimit;
    const want = o.limit === undefined || o.keep !== undefined ? size : o.limit + skip - out.length;
    const p = await page(cursor, Math.max(1, Math.min(size, want)));
    for (const item of p.items) {
      if (o.keep !== undefined && !o.keep(item)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      if (o.limit !== undefined && out.length >= o.limit) return out;
      out.push(item);
    }
    if (p.nextCursor === '' || (o.limit !== undefined && out.length >= o.limit)) return out;
    cursor = p.nextCursor;
  }
}

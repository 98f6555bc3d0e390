/** `kavach.audit`: the audit trail (GET /v1/audit, /v1/audit/export). */
import * as convert from './convert.js';
import type { Transport } from './http.js';
import { collect } from './paging.js';
import type { AuditEntry, AuditExportOptions, AuditFilter, AuditPageFilter, Page } from './types.js';
import type { WireAuditEntry } from './wire.js';

/** The audit methods of a Kavach client. */
export interface AuditModule {
  /**
   * Audit rows matching the filter, newest first: by default the decisions
   * only, as KavachOS logs them (`kind: 'all'` adds Kavach's events).
   * Fetches pages until `limit` rows (after `offset`) or the last page.
   */
  query(filter?: AuditFilter): Promise<AuditEntry[]>;
  /** Kavach: one page of audit rows, newest first, `limit` after `cursor`. */
  queryPage(filter?: AuditPageFilter): Promise<Page<AuditEntry>>;
  /**
   * The trail, oldest first, as Kavach's CSV (RFC 4180, its own header) or
   * JSON array, streamed by the sidecar and returned whole.
   */
  export(options: AuditExportOptions): Promise<string>;
}

/** The audit methods over t. */
export function auditModule(t: Transport): AuditModule {
  const queryPage: AuditModule['queryPage'] = async (f = {}) => {
    const res = await t.json<{ entries: WireAuditEntry[] | null; nextCursor: string }>({
      method: 'GET',
      path: '/v1/audit',
      query: {
        agentId: f.agentId,
        userId: f.userId,
        result: f.result,
        since: f.since,
        until: f.until,
        kind: f.kind === 'all' ? undefined : (f.kind ?? 'decision'),
        action: f.action,
        limit: f.limit,
        cursor: f.cursor,
      },
    });
    return { items: (res.entries ?? []).map(convert.auditEntry), nextCursor: res.nextCursor };
  };
  return {
    async query(f = {}) {
      const actions = f.actions ?? [];
      const oneAction = actions.length === 1 ? actions[0] : undefined;
      const keeps: ((e: AuditEntry) => boolean)[] = [];
      if (actions.length > 1) keeps.push((e) => actions.includes(e.action));
      // KavachOS's rate_limited result is Kavach's denial with code rate_limited.
      if (f.result === 'rate_limited') keeps.push((e) => e.code === 'rate_limited');
      const result = f.result === 'rate_limited' ? 'denied' : f.result;
      const filter: AuditPageFilter = { agentId: f.agentId, userId: f.userId, since: f.since, until: f.until, result, action: oneAction, kind: f.kind };
      return collect((cursor, limit) => queryPage({ ...filter, cursor, limit }), {
        limit: f.limit,
        offset: f.offset,
        pageSize: t.pageSize,
        ...(keeps.length === 0 ? {} : { keep: (e: AuditEntry) => keeps.every((k) => k(e)) }),
      });
    },
    queryPage,
    export(o) {
      return t.text({
        method: 'GET',
        path: '/v1/audit/export',
        query: {
          format: o.format,
          since: o.since,
          until: o.until,
          agentId: o.agentId,
          userId: o.userId,
          result: o.result,
          kind: o.kind,
          action: o.action,
        },
      });
    },
  };
}

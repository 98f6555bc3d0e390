/** `kavach.approval`: human approval requests (GET/POST /v1/approvals…). */
import * as convert from './convert.js';
import { isKavachError } from './errors.js';
import { seg, type Transport } from './http.js';
import { collect } from './paging.js';
import type { ApprovalFilter, ApprovalRequest, Page, PageOptions, ResolveApprovalInput } from './types.js';
import type { WireApproval } from './wire.js';

/**
 * The approval methods of a Kavach client. Requests are opened by the
 * sidecar itself: a decision on a permission with `requireApproval` answers
 * `code: 'approval_required'` with an `approvalId`.
 */
export interface ApprovalModule {
  /** The request, or `null` when none has this ID (as KavachOS). */
  get(approvalId: string): Promise<ApprovalRequest | null>;
  /**
   * Approves a pending request; the agent's next decision with this
   * `approvalId` is allowed once. `respondedBy` (KavachOS's string, or
   * `{ onBehalfOf, note }`) is the user the app vouches for; the deciding
   * key (`approver` or `admin`) is recorded beside it. 409 if not pending.
   */
  approve(approvalId: string, respondedBy?: string | ResolveApprovalInput): Promise<ApprovalRequest>;
  /** Denies a pending request, as `approve`. */
  deny(approvalId: string, respondedBy?: string | ResolveApprovalInput): Promise<ApprovalRequest>;
  /** Every pending request, of one owner when `userId` is given (fetches every page). */
  listPending(userId?: string): Promise<ApprovalRequest[]>;
  /** Kavach: every request matching the filter, newest first (fetches every page). */
  list(filter?: ApprovalFilter): Promise<ApprovalRequest[]>;
  /** Kavach: one page of them. */
  listPage(filter?: ApprovalFilter & PageOptions): Promise<Page<ApprovalRequest>>;
}

/** The approval methods over t. */
export function approvalModule(t: Transport): ApprovalModule {
  const listPage: ApprovalModule['listPage'] = async (f = {}) => {
    const res = await t.json<{ approvals: WireApproval[] | null; nextCursor: string }>({
      method: 'GET',
      path: '/v1/approvals',
      query: { status: f.status, ownerId: f.ownerId ?? f.userId, agentId: f.agentId, limit: f.limit, cursor: f.cursor },
    });
    return { items: (res.approvals ?? []).map(convert.approval), nextCursor: res.nextCursor };
  };
  const resolve = async (approvalId: string, verb: 'approve' | 'deny', by?: string | ResolveApprovalInput): Promise<ApprovalRequest> => {
    const body = typeof by === 'string' ? { onBehalfOf: by } : { onBehalfOf: by?.onBehalfOf, note: by?.note };
    return convert.approval(await t.json<WireApproval>({ method: 'POST', path: `/v1/approvals/${seg(approvalId)}/${verb}`, body }));
  };
  const list: ApprovalModule['list'] = (f = {}) => collect((cursor, limit) => listPage({ ...f, cursor, limit }), { pageSize: t.pageSize });
  return {
    async get(approvalId) {
      try {
        return convert.approval(await t.json<WireApproval>({ method: 'GET', path: `/v1/approvals/${seg(approvalId)}` }));
      } catch (e) {
        if (isKavachError(e) && e.status === 404) return null;
        throw e;
      }
    },
    approve: (id, by) => resolve(id, 'approve', by),
    deny: (id, by) => resolve(id, 'deny', by),
    listPending: (userId) => list({ status: 'pending', userId }),
    list,
    listPage,
  };
}

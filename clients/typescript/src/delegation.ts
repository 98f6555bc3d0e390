/** `kavach.delegate` and `kavach.delegation`: passing permissions between agents. */
import * as convert from './convert.js';
import { seg, type Transport } from './http.js';
import { collect } from './paging.js';
import type { DelegateInput, DelegationChain, EffectivePermission, Page, PageOptions, Permission } from './types.js';
import type { WireDelegation, WireEffectivePermission } from './wire.js';

/** The delegation methods of a Kavach client (besides `kavach.delegate`). */
export interface DelegationModule {
  /**
   * What the agent may do, own and delegated, as KavachOS's `Permission[]`
   * (resource, actions, constraints when there are some).
   */
  getEffectivePermissions(agentId: string): Promise<Permission[]>;
  /** Kavach: the same, each with its source, delegation, depth and expiry. */
  getEffectivePermissionDetails(agentId: string): Promise<EffectivePermission[]>;
  /** Revokes a delegation, and so what hangs from it; returns it. Repeating is harmless. */
  revoke(delegationId: string): Promise<DelegationChain>;
  /** Kavach: one delegation, with its `status`. */
  get(delegationId: string): Promise<DelegationChain>;
  /** The delegations from and to the agent, oldest first (fetches every page). */
  listChains(agentId: string): Promise<DelegationChain[]>;
  /** Kavach: one page of them. */
  listChainsPage(agentId: string, page?: PageOptions): Promise<Page<DelegationChain>>;
}

/** The delegation methods over t. */
export function delegationModule(t: Transport): { delegate: (input: DelegateInput) => Promise<DelegationChain>; delegation: DelegationModule } {
  const effective = async (agentId: string): Promise<EffectivePermission[]> => {
    const res = await t.json<{ permissions: WireEffectivePermission[] | null }>({
      method: 'GET',
      path: `/v1/agents/${seg(agentId)}/effective-permissions`,
    });
    return (res.permissions ?? []).map(convert.effective);
  };
  const listChainsPage: DelegationModule['listChainsPage'] = async (agentId, page = {}) => {
    const res = await t.json<{ delegations: WireDelegation[] | null; nextCursor: string }>({
      method: 'GET',
      path: `/v1/agents/${seg(agentId)}/delegations`,
      query: { limit: page.limit, cursor: page.cursor },
    });
    return { items: (res.delegations ?? []).map(convert.delegation), nextCursor: res.nextCursor };
  };
  return {
    /**
     * Gives `toAgent` a subset of what `fromAgent` holds. An escalation (more
     * than the giver holds), a cycle or a chain deeper than its `maxDepth` is
     * refused here, as a KavachError (422 `delegation_escalation`, …).
     */
    async delegate(input) {
      const body = {
        fromAgent: input.fromAgent,
        toAgent: input.toAgent,
        permissions: input.permissions,
        expiresAt: input.expiresAt.toISOString(),
        maxDepth: input.maxDepth,
      };
      return convert.delegation(await t.json<WireDelegation>({ method: 'POST', path: '/v1/delegations', body }));
    },
    delegation: {
      async getEffectivePermissions(agentId) {
        return (await effective(agentId)).map(({ resource, actions, constraints }) =>
          constraints === undefined ? { resource, actions } : { resource, actions, constraints },
        );
      },
      getEffectivePermissionDetails: effective,
      async revoke(delegationId) {
        return convert.delegation(await t.json<WireDelegation>({ method: 'POST', path: `/v1/delegations/${seg(delegationId)}/revoke` }));
      },
      async get(delegationId) {
        return convert.delegation(await t.json<WireDelegation>({ method: 'GET', path: `/v1/delegations/${seg(delegationId)}` }));
      },
      listChains: (agentId) => collect((cursor, limit) => listChainsPage(agentId, { cursor, limit }), { pageSize: t.pageSize }),
      listChainsPage,
    },
  };
}

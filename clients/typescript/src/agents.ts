/** `kavach.agent`: agents' lifecycle (POST/GET/PATCH /v1/agents…). */
import * as convert from './convert.js';
import { isKavachError } from './errors.js';
import { seg, type Transport } from './http.js';
import { collect } from './paging.js';
import type { Agent, AgentFilter, AgentStatus, CreateAgentInput, Page, PageOptions, UpdateAgentInput } from './types.js';
import type { WireAgent } from './wire.js';

/** The agent methods of a Kavach client. */
export interface AgentModule {
  /** Creates an agent; the result carries its token (`kv_…`), shown only here. */
  create(input: CreateAgentInput): Promise<Agent>;
  /** The agent, or `null` when no agent has this ID (as KavachOS). */
  get(agentId: string): Promise<Agent | null>;
  /** Every agent matching the filter, oldest first (fetches every page). */
  list(filter?: AgentFilter): Promise<Agent[]>;
  /** One page of agents (Kavach): by owner and status, `limit` after `cursor`. */
  listPage(filter?: { ownerId?: string; userId?: string; status?: AgentStatus } & PageOptions): Promise<Page<Agent>>;
  /** Changes name, permissions (replaced), expiry (`null` clears) or metadata. */
  update(agentId: string, input: UpdateAgentInput): Promise<Agent>;
  /** Revokes the agent for good; returns it (`status: 'revoked'`). Repeating is harmless. */
  revoke(agentId: string): Promise<Agent>;
  /** Gives the agent a new token (returned); the old one is refused from now on. */
  rotate(agentId: string): Promise<Agent>;
  /** Lifts a suspension (Kavach, admin only); returns the agent, active again. */
  resume(agentId: string): Promise<Agent>;
}

/** The agent methods over t. */
export function agentModule(t: Transport): AgentModule {
  const listPage: AgentModule['listPage'] = async (f = {}) => {
    const res = await t.json<{ agents: WireAgent[] | null; nextCursor: string }>({
      method: 'GET',
      path: '/v1/agents',
      query: { ownerId: f.ownerId ?? f.userId, status: f.status, limit: f.limit, cursor: f.cursor },
    });
    return { items: (res.agents ?? []).map(convert.agent), nextCursor: res.nextCursor };
  };
  const post = async (agentId: string, verb: string): Promise<Agent> =>
    convert.agent(await t.json<WireAgent>({ method: 'POST', path: `/v1/agents/${seg(agentId)}/${verb}` }));
  return {
    async create(input) {
      const body = {
        ownerId: input.ownerId,
        name: input.name,
        type: input.type,
        permissions: input.permissions,
        expiresAt: input.expiresAt?.toISOString(),
        metadata: input.metadata,
      };
      return convert.agent(await t.json<WireAgent>({ method: 'POST', path: '/v1/agents', body }));
    },
    async get(agentId) {
      try {
        return convert.agent(await t.json<WireAgent>({ method: 'GET', path: `/v1/agents/${seg(agentId)}` }));
      } catch (e) {
        if (isKavachError(e) && e.status === 404) return null;
        throw e;
      }
    },
    async list(filter = {}) {
      const type = filter.type;
      return collect(
        (cursor, limit) => listPage({ ownerId: filter.ownerId ?? filter.userId, status: filter.status, cursor, limit }),
        type === undefined ? { pageSize: t.pageSize } : { pageSize: t.pageSize, keep: (a) => a.type === type },
      );
    },
    listPage,
    async update(agentId, input) {
      const body = {
        name: input.name,
        permissions: input.permissions,
        // null clears the expiry; undefined leaves it out of the body.
        expiresAt: input.expiresAt === null ? null : input.expiresAt?.toISOString(),
        metadata: input.metadata,
      };
      return convert.agent(await t.json<WireAgent>({ method: 'PATCH', path: `/v1/agents/${seg(agentId)}`, body }));
    },
    revoke: (agentId) => post(agentId, 'revoke'),
    rotate: (agentId) => post(agentId, 'rotate'),
    resume: (agentId) => post(agentId, 'resume'),
  };
}

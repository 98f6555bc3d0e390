/** `kavach.keys`: Kavach's API keys (admin only; POST/GET /v1/keys…). */
import * as convert from './convert.js';
import { seg, type Transport } from './http.js';
import { collect } from './paging.js';
import type { ApiKey, ApiKeyWithSecret, CreateKeyInput, Page, PageOptions } from './types.js';
import type { WireKey } from './wire.js';

/** The API key methods of a Kavach client. */
export interface KeyModule {
  /** Creates a key with roles; the result's `key` (`kvk_…`) is shown only here. */
  create(input: CreateKeyInput): Promise<ApiKeyWithSecret>;
  /** The key, never its secret. */
  get(keyId: string): Promise<ApiKey>;
  /** Every key, oldest first (fetches every page). */
  list(): Promise<ApiKey[]>;
  /** One page of keys. */
  listPage(page?: PageOptions): Promise<Page<ApiKey>>;
  /** Revokes the key: refused from then on, on every replica. Repeating is harmless. */
  revoke(keyId: string): Promise<ApiKey>;
}

/** The key methods over t. */
export function keyModule(t: Transport): KeyModule {
  const listPage: KeyModule['listPage'] = async (p = {}) => {
    const res = await t.json<{ keys: WireKey[] | null; nextCursor: string }>({
      method: 'GET',
      path: '/v1/keys',
      query: { limit: p.limit, cursor: p.cursor },
    });
    return { items: (res.keys ?? []).map(convert.apiKey), nextCursor: res.nextCursor };
  };
  return {
    async create(input) {
      const body = { name: input.name, roles: input.roles, expiresAt: input.expiresAt?.toISOString() };
      return convert.apiKeyWithSecret(await t.json<WireKey>({ method: 'POST', path: '/v1/keys', body }));
    },
    async get(keyId) {
      return convert.apiKey(await t.json<WireKey>({ method: 'GET', path: `/v1/keys/${seg(keyId)}` }));
    },
    list: () => collect((cursor, limit) => listPage({ cursor, limit }), { pageSize: t.pageSize }),
    listPage,
    async revoke(keyId) {
      return convert.apiKey(await t.json<WireKey>({ method: 'POST', path: `/v1/keys/${seg(keyId)}/revoke` }));
    },
  };
}

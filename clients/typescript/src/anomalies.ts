/** `kavach.anomalies` and `kavach.trust`: Kavach's detection and trust scores. */
import * as convert from './convert.js';
import { seg, type Transport } from './http.js';
import { collect } from './paging.js';
import type { Anomaly, AnomalyFilter, Page, PageOptions, TrustScore } from './types.js';
import type { WireAnomaly, WireTrust } from './wire.js';

/** Kavach's anomalies, detected from the audit stream. */
export interface AnomalyModule {
  /** Anomalies matching the filter, newest first (fetches pages up to `limit`). */
  list(filter?: AnomalyFilter): Promise<Anomaly[]>;
  /** One page of them. */
  listPage(filter?: Omit<AnomalyFilter, 'limit'> & PageOptions): Promise<Page<Anomaly>>;
}

/** Trust scores, as KavachOS's `kavach.trust` (Kavach keeps them current itself). */
export interface TrustModule {
  /** The agent's current score (GET /v1/agents/{id}/trust). */
  getScore(agentId: string): Promise<TrustScore>;
  /** KavachOS's name: the same as `getScore`, since Kavach scores continuously. */
  computeScore(agentId: string): Promise<TrustScore>;
}

/** The anomaly and trust methods over t. */
export function anomalyModules(t: Transport): { anomalies: AnomalyModule; trust: TrustModule } {
  const listPage: AnomalyModule['listPage'] = async (f = {}) => {
    const res = await t.json<{ anomalies: WireAnomaly[] | null; nextCursor: string }>({
      method: 'GET',
      path: '/v1/anomalies',
      query: { agentId: f.agentId, type: f.type, since: f.since, limit: f.limit, cursor: f.cursor },
    });
    return { items: (res.anomalies ?? []).map(convert.anomaly), nextCursor: res.nextCursor };
  };
  const getScore = async (agentId: string): Promise<TrustScore> =>
    convert.trust(await t.json<WireTrust>({ method: 'GET', path: `/v1/agents/${seg(agentId)}/trust` }));
  return {
    anomalies: {
      list: ({ limit, ...f } = {}) => collect((cursor, l) => listPage({ ...f, cursor, limit: l }), { limit, pageSize: t.pageSize }),
      listPage,
    },
    trust: { getScore, computeScore: getScore },
  };
}

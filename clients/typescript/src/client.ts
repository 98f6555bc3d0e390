/** `createKavach`: the client object, with KavachOS's shape. */
import { type AgentModule, agentModule } from './agents.js';
import { type AnomalyModule, type TrustModule, anomalyModules } from './anomalies.js';
import { type ApprovalModule, approvalModule } from './approvals.js';
import { type AuditModule, auditModule } from './audit.js';
import { type AuthorizeMethods, authorizeMethods } from './authorize.js';
import { type DelegationModule, delegationModule } from './delegation.js';
import { Transport } from './http.js';
import { type KeyModule, keyModule } from './keys.js';
import type { DelegateInput, DelegationChain } from './types.js';

/** Kavach's default address (`kavach serve` without `--addr`). */
export const defaultUrl = 'http://127.0.0.1:7400';

/** Where the sidecar is and how to call it. */
export interface KavachOptions {
  /** The sidecar's base URL; `http://127.0.0.1:7400` when absent. */
  url?: string | URL | undefined;
  /**
   * The API key (`kvk_…`, or `KAVACH_ADMIN_KEY`), sent as
   * `Authorization: Bearer`. Its roles decide what the client may call: an
   * app asking for decisions needs only `decider`.
   */
  apiKey?: string | undefined;
  /** The `fetch` to use (a test double, a proxying fetch); the global one when absent. */
  fetch?: typeof fetch | undefined;
  /** Headers added to every request (tracing, a proxy's own credential). */
  headers?: Record<string, string> | undefined;
  /** How long a call may take before it fails with code `timeout`; 30 s when absent. */
  timeoutMs?: number | undefined;
  /**
   * Items per page (1 to 1000) when a method fetches every page (`agent.list`,
   * `audit.query`, …); 1000 when absent.
   */
  pageSize?: number | undefined;
}

/** A client of one Kavach sidecar: KavachOS's methods, and Kavach's additions. */
export interface Kavach extends AuthorizeMethods {
  /** Agents: create, get, list, update, revoke, rotate (and Kavach's resume). */
  agent: AgentModule;
  /**
   * Gives `toAgent` a subset of what `fromAgent` holds. An escalation (more
   * than the giver holds), a cycle or a chain deeper than its `maxDepth` is
   * refused here with a KavachError (422 `delegation_escalation`,
   * `delegation_cycle`, `delegation_depth_exceeded`, …), not at decision time.
   */
  delegate(input: DelegateInput): Promise<DelegationChain>;
  /** Delegations: effective permissions, revoke, list chains. */
  delegation: DelegationModule;
  /** The audit trail: query and export. */
  audit: AuditModule;
  /** Human approval requests. */
  approval: ApprovalModule;
  /** Kavach: anomalies detected from the audit stream. */
  anomalies: AnomalyModule;
  /** Trust scores. */
  trust: TrustModule;
  /** Kavach: API keys and their roles (admin). */
  keys: KeyModule;
}

/**
 * A client of the Kavach sidecar at `url`. Where KavachOS's `createKavach`
 * took a database, this takes the sidecar's address and an API key; the
 * object it returns has KavachOS's methods and result shapes. Every method
 * throws a {@link KavachError} when the call fails.
 *
 * @example
 * ```ts
 * const kavach = createKavach({ url: process.env.KAVACH_URL, apiKey: process.env.KAVACH_API_KEY });
 * const { allowed } = await kavach.authorize(agentId, { action: 'read', resource: 'mcp:github:repos' });
 * ```
 */
export function createKavach(options: KavachOptions = {}): Kavach {
  const t = new Transport({ ...options, url: options.url ?? defaultUrl });
  const { delegate, delegation } = delegationModule(t);
  const { anomalies, trust } = anomalyModules(t);
  return {
    agent: agentModule(t),
    ...authorizeMethods(t),
    delegate,
    delegation,
    audit: auditModule(t),
    approval: approvalModule(t),
    anomalies,
    trust,
    keys: keyModule(t),
  };
}

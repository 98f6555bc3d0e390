/**
 * The public shapes of `@kavach/client`: KavachOS's names and types where
 * KavachOS has them (times as `Date`, `userId` where KavachOS says it), plus
 * what Kavach adds. Kavach's own JSON is in `wire.ts`.
 */

/** A JSON value, as Kavach stores arguments, metadata and constraints. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** The kind of an agent. */
export type AgentType = 'autonomous' | 'delegated' | 'service';

/** The state of an agent; `suspended` is Kavach's (anomaly containment). */
export type AgentStatus = 'active' | 'suspended' | 'revoked' | 'expired';

/** The constraints a permission may carry: KavachOS's, and Kavach's additions. The sidecar checks them. */
export interface PermissionConstraints {
  maxCallsPerHour?: number;
  allowedArgPatterns?: string[];
  /** `true`, `false`, or (Kavach) a trust level below which approval is required. */
  requireApproval?: boolean | TrustLevel;
  /** Kavach adds `timezone` (default UTC) and `days` (`mon`…`sun`). */
  timeWindow?: { start: string; end: string; timezone?: string; days?: string[] };
  ipAllowlist?: string[];
  /** Kavach: refused while the agent's trust level ranks below this. */
  minTrustLevel?: TrustLevel;
}

/** Actions on a resource pattern, as KavachOS's `Permission`. */
export interface Permission {
  resource: string;
  actions: string[];
  constraints?: PermissionConstraints;
}

/**
 * An agent, as KavachOS's `AgentIdentity`. `token` is the bearer token on
 * `create` and `rotate` only, and `""` everywhere else (as in KavachOS).
 */
export interface Agent {
  id: string;
  ownerId: string;
  name: string;
  type: AgentType;
  token: string;
  permissions: Permission[];
  status: AgentStatus;
  expiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  /** Kavach: when it was revoked. */
  revokedAt?: Date;
  /** Kavach: the metadata given at creation or update. */
  metadata: JsonObject;
}

/** The body of `agent.create`. */
export interface CreateAgentInput {
  ownerId: string;
  name: string;
  type?: AgentType;
  /** Absent: the sidecar's `agents.defaultPermissions`. */
  permissions?: Permission[];
  expiresAt?: Date;
  metadata?: Record<string, unknown>;
}

/** The body of `agent.update`: absent fields are unchanged, permissions replace. */
export interface UpdateAgentInput {
  name?: string;
  permissions?: Permission[];
  /** `null` removes the expiry. */
  expiresAt?: Date | null;
  metadata?: Record<string, unknown>;
}

/** The filter of `agent.list`. */
export interface AgentFilter {
  /** KavachOS's name for the owner; `ownerId` works too. */
  userId?: string;
  ownerId?: string;
  status?: AgentStatus;
  /** Filtered by the client: the sidecar lists by owner and status. */
  type?: AgentType;
}

/** One page of a list and the cursor of the next (`""` on the last page). */
export interface Page<T> {
  items: T[];
  nextCursor: string;
}

/** Which page: `limit` items (1 to 1000, 100 by default) after `cursor`. */
export interface PageOptions {
  limit?: number;
  cursor?: string;
}

/** Facts about the agent's own caller, written to the audit row. */
export interface RequestContext {
  ip?: string;
  userAgent?: string;
}

/** What an agent wants to do: KavachOS's `AuthorizeRequest`, plus Kavach's fields. */
export interface AuthorizeRequest {
  action: string;
  resource: string;
  /** Any JSON object; written to the audit row and checked by `allowedArgPatterns`. */
  arguments?: Record<string, unknown>;
  context?: RequestContext;
  /** KavachOS's older place for the caller's IP: sent as `context.ip`. */
  ip?: string;
  /** Kavach: an approved request, for a permission that requires approval. */
  approvalId?: string;
  /** Kavach: return every permission considered and why (`explanation`). */
  explain?: boolean;
}

/** A decision: KavachOS's `{ allowed, reason?, auditId }` and Kavach's stable `code`. */
export interface AuthorizeResult {
  allowed: boolean;
  reason?: string;
  auditId: string;
  /** Kavach: `allowed`, `no_permission`, `approval_required`, `rate_limited`, `invalid_token`, … */
  code: string;
  /** Kavach: the approval request opened when `code` is `approval_required`. */
  approvalId?: string;
  /** Kavach, with `explain: true`: the permissions considered. */
  explanation?: JsonValue;
}

/** The body of `delegate`. */
export interface DelegateInput {
  fromAgent: string;
  toAgent: string;
  permissions: Permission[];
  expiresAt: Date;
  /** Absent: Kavach's default, 1 (KavachOS's is 3). */
  maxDepth?: number;
}

/** A delegated permission and the chain it hangs from (Kavach). */
export interface DelegationGrant extends Permission {
  /** Constraint sets it carries from up the chain. */
  inherited?: { key: string; constraints: JsonObject }[];
  /** The links it hangs from, root first. */
  chain: { delegationId: string; index: number }[];
  /** The key of the permission it was cut from. */
  coveredBy: string;
}

/** A delegation, as KavachOS's `DelegationChain`, plus Kavach's fields. */
export interface DelegationChain {
  id: string;
  fromAgent: string;
  toAgent: string;
  permissions: Permission[];
  expiresAt: Date;
  depth: number;
  createdAt: Date;
  /** Kavach: the deepest chain this delegation may start. */
  maxDepth: number;
  /** Kavach: `active`, `revoked` or `expired`. */
  status: 'active' | 'revoked' | 'expired';
  revokedAt?: Date;
  /** Kavach: `permissions` with their chains. */
  grants: DelegationGrant[];
}

/** Kavach: one entry of an agent's effective permissions, with where it comes from. */
export interface EffectivePermission extends Permission {
  /** `own` or `delegation`. */
  source: 'own' | 'delegation';
  /** The constraint sets a delegated entry inherits up the chain; each must hold. */
  inheritedConstraints?: { from: string; constraints: JsonObject }[];
  delegationId?: string;
  fromAgent?: string;
  depth?: number;
  expiresAt?: Date;
}

/** The result of a decision or an event. */
export type AuditResult = 'allowed' | 'denied' | 'rate_limited';

/** Who asked for a decision or made a change. */
export interface AuditActor {
  type: 'key' | 'admin_env' | 'agent' | 'anonymous' | 'system';
  id?: string;
  name?: string;
  onBehalfOf?: string;
}

/**
 * An audit row, as KavachOS's `AuditEntry` (`userId`, `parameters`,
 * `durationMs`, `timestamp` as a `Date`), plus Kavach's fields.
 */
export interface AuditEntry {
  id: string;
  agentId: string;
  /** The agent's owner (Kavach's `ownerId`). */
  userId: string;
  action: string;
  resource: string;
  /** The decision's arguments (Kavach's `arguments`); `{}` when none. */
  parameters: JsonObject;
  /**
   * `allowed` or `denied` (events too: a change made, a call refused); never
   * `rate_limited`, which Kavach writes as `denied` with code `rate_limited`.
   */
  result: AuditResult;
  reason?: string;
  /** `durationUs / 1000`. */
  durationMs: number;
  timestamp: Date;
  /** Kavach: `decision` or `event` (a change of state or a refused call). */
  kind: 'decision' | 'event';
  /** Kavach: the decision's or refusal's stable code. */
  code: string;
  ownerId: string;
  durationUs: number;
  actor: AuditActor;
  ip?: string;
  userAgent?: string;
  approvalId?: string;
  /** Kavach, for events: what changed (`{before, after}`). */
  changes?: JsonValue;
  /** Kavach: the row's place in the tamper-evident trail. */
  chainId?: string;
  chainSeq?: number;
  prevHash?: string;
  hash?: string;
}

/** The filter of `audit.query`. */
export interface AuditFilter {
  agentId?: string;
  userId?: string;
  /** Inclusive. */
  since?: Date;
  /** Exclusive (KavachOS: inclusive). */
  until?: Date;
  /** Kept when the action is one of these. */
  actions?: string[];
  /** `rate_limited` is Kavach's `denied` with code `rate_limited`. */
  result?: AuditResult;
  /** At most this many rows (all when absent). */
  limit?: number;
  /** Rows to skip first. */
  offset?: number;
  /** Kavach: `decision` (the default, as KavachOS logs only decisions), `event`, or `all`. */
  kind?: 'decision' | 'event' | 'all';
}

/** The filter and page of `audit.queryPage`. */
export interface AuditPageFilter extends PageOptions {
  agentId?: string;
  userId?: string;
  since?: Date;
  until?: Date;
  action?: string;
  result?: 'allowed' | 'denied';
  kind?: 'decision' | 'event' | 'all';
}

/** The options of `audit.export`. */
export interface AuditExportOptions {
  format: 'csv' | 'json';
  since?: Date;
  until?: Date;
  agentId?: string;
  userId?: string;
  result?: 'allowed' | 'denied';
  /** Kavach: `decision`, `event`; the whole trail when absent. */
  kind?: 'decision' | 'event';
  action?: string;
}

/** The state of an approval request. */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'used' | 'expired';

/** A request for a human to allow one call, as KavachOS's `ApprovalRequest`. */
export interface ApprovalRequest {
  id: string;
  agentId: string;
  /** The agent's owner (Kavach's `ownerId`). */
  userId: string;
  action: string;
  resource: string;
  arguments?: JsonValue;
  status: ApprovalStatus;
  expiresAt: Date;
  respondedAt?: Date;
  /**
   * Who it was decided for: KavachOS's `respondedBy` (Kavach's `onBehalfOf`).
   * The deciding key's ID is `respondedByKey`.
   */
  respondedBy?: string;
  createdAt: Date;
  /** Kavach: the key that decided it, and its name. */
  respondedByKey?: string;
  respondedByName?: string;
  note?: string;
  usedAt?: Date;
  /** Kavach: the signed link for its owner, while pending, to approvers. */
  url?: string;
}

/** The filter of `approval.list`. */
export interface ApprovalFilter {
  status?: ApprovalStatus;
  /** KavachOS's name for the owner; `ownerId` works too. */
  userId?: string;
  ownerId?: string;
  agentId?: string;
}

/** How an approval is decided: for whom, and a note. */
export interface ResolveApprovalInput {
  onBehalfOf?: string;
  note?: string;
}

/** Kavach's anomaly types. */
export type AnomalyType = 'high_frequency' | 'high_denial_rate' | 'off_hours' | 'probing';

/** Kavach: a behaviour of an agent that detection flagged. */
export interface Anomaly {
  id: string;
  agentId: string;
  type: AnomalyType;
  severity: string;
  detectedAt: Date;
  description: string;
  /** The counts behind it and, under `auditIds`, the audit rows. */
  evidence: JsonObject;
}

/** The filter of `anomalies.list`. */
export interface AnomalyFilter {
  agentId?: string;
  type?: AnomalyType;
  since?: Date;
  /** At most this many (all when absent). */
  limit?: number;
}

/** A trust level. */
export type TrustLevel = 'untrusted' | 'limited' | 'standard' | 'trusted' | 'elevated';

/** An agent's trust score, as KavachOS's `TrustScore`, with Kavach's factors. */
export interface TrustScore {
  agentId: string;
  score: number;
  level: TrustLevel;
  /** Kavach's terms of the score (KavachOS has rates instead). */
  factors: {
    base: number;
    allowedCalls: number;
    allowedBonus: number;
    denials: number;
    denialPenalty: number;
    anomalies: number;
    anomalyPenalty: number;
    ageDays: number;
    ageBonus: number;
  };
  /** RFC 3339, as KavachOS gives it. */
  computedAt: string;
}

/** An API key's role. */
export type Role = 'admin' | 'approver' | 'auditor' | 'decider' | 'metrics';

/** Kavach: an API key, never its secret. */
export interface ApiKey {
  id: string;
  name: string;
  roles: Role[];
  status: 'active' | 'revoked' | 'expired';
  createdBy?: string;
  expiresAt: Date | null;
  createdAt: Date;
  revokedAt?: Date;
}

/** Kavach: a new API key, with its secret (`kvk_…`), shown only here. */
export interface ApiKeyWithSecret extends ApiKey {
  key: string;
}

/** The body of `keys.create`. */
export interface CreateKeyInput {
  name: string;
  roles: Role[];
  expiresAt?: Date;
}

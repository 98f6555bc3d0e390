/**
 * Kavach's JSON to KavachOS's shapes: RFC 3339 strings to `Date`,
 * `ownerId` to `userId` where KavachOS says it, `durationUs` to
 * `durationMs`, absent lists to `[]`. Every difference is listed in the
 * README's "Coming from KavachOS".
 */
import type {
  Agent,
  AgentStatus,
  AgentType,
  Anomaly,
  AnomalyType,
  ApiKey,
  ApiKeyWithSecret,
  ApprovalRequest,
  ApprovalStatus,
  AuditEntry,
  AuthorizeResult,
  DelegationChain,
  EffectivePermission,
  JsonObject,
  JsonValue,
  Permission,
  Role,
  TrustLevel,
  TrustScore,
} from './types.js';
import type {
  WireAgent,
  WireAnomaly,
  WireApproval,
  WireAuditEntry,
  WireAuthorizeResponse,
  WireDelegation,
  WireEffectivePermission,
  WireKey,
  WirePermission,
  WireTrust,
} from './wire.js';

/** Parses one of Kavach's times. */
export function date(s: string): Date {
  return new Date(s);
}

function optDate(s: string | null | undefined): Date | undefined {
  return s === undefined || s === null || s === '' ? undefined : new Date(s);
}

/** A permission as KavachOS prints it: constraints only when there are some. */
export function permission(p: WirePermission): Permission {
  const out: Permission = { resource: p.resource, actions: [...p.actions] };
  if (p.constraints !== undefined && p.constraints !== null && Object.keys(p.constraints).length > 0) {
    out.constraints = p.constraints;
  }
  return out;
}

/** An agent; `token` is `""` unless the answer carried one (create, rotate). */
export function agent(a: WireAgent): Agent {
  const out: Agent = {
    id: a.id,
    ownerId: a.ownerId,
    name: a.name,
    type: a.type as AgentType,
    token: a.token ?? '',
    permissions: (a.permissions ?? []).map(permission),
    status: a.status as AgentStatus,
    expiresAt: optDate(a.expiresAt) ?? null,
    createdAt: date(a.createdAt),
    updatedAt: date(a.updatedAt),
    metadata: a.metadata ?? {},
  };
  const revokedAt = optDate(a.revokedAt);
  if (revokedAt !== undefined) out.revokedAt = revokedAt;
  return out;
}

/** A decision: `reason` left out when Kavach gives none. */
export function decision(d: WireAuthorizeResponse): AuthorizeResult {
  const out: AuthorizeResult = { allowed: d.allowed, auditId: d.auditId, code: d.code };
  if (d.reason !== '') out.reason = d.reason;
  if (d.approvalId !== undefined && d.approvalId !== '') out.approvalId = d.approvalId;
  if (d.explanation !== undefined) out.explanation = d.explanation;
  return out;
}

/** A delegation: KavachOS's chain, with the grants kept beside it. */
export function delegation(d: WireDelegation): DelegationChain {
  const grants = (d.permissions ?? []).map((g) => {
    const out: DelegationChain['grants'][number] = { ...permission(g), chain: g.chain ?? [], coveredBy: g.coveredBy };
    if (g.inherited !== undefined && g.inherited.length > 0) out.inherited = g.inherited;
    return out;
  });
  const out: DelegationChain = {
    id: d.id,
    fromAgent: d.fromAgent,
    toAgent: d.toAgent,
    permissions: (d.permissions ?? []).map(permission),
    expiresAt: date(d.expiresAt),
    depth: d.depth,
    createdAt: date(d.createdAt),
    maxDepth: d.maxDepth,
    status: d.status as DelegationChain['status'],
    grants,
  };
  const revokedAt = optDate(d.revokedAt);
  if (revokedAt !== undefined) out.revokedAt = revokedAt;
  return out;
}

/** An effective permission with its source, delegation, depth and expiry. */
export function effective(p: WireEffectivePermission): EffectivePermission {
  const out: EffectivePermission = { ...permission(p), source: p.source as EffectivePermission['source'] };
  if (p.inheritedConstraints !== undefined && p.inheritedConstraints.length > 0) out.inheritedConstraints = p.inheritedConstraints;
  if (p.delegationId !== undefined) out.delegationId = p.delegationId;
  if (p.fromAgent !== undefined) out.fromAgent = p.fromAgent;
  if (p.depth !== undefined) out.depth = p.depth;
  const expiresAt = optDate(p.expiresAt);
  if (expiresAt !== undefined) out.expiresAt = expiresAt;
  return out;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An audit row: KavachOS's fields first, then Kavach's. */
export function auditEntry(e: WireAuditEntry): AuditEntry {
  const out: AuditEntry = {
    id: e.id,
    agentId: e.agentId,
    userId: e.ownerId,
    action: e.action,
    resource: e.resource,
    parameters: isObject(e.arguments) ? e.arguments : {},
    result: e.result as AuditEntry['result'],
    durationMs: e.durationUs / 1000,
    timestamp: date(e.timestamp),
    kind: e.kind as AuditEntry['kind'],
    code: e.code,
    ownerId: e.ownerId,
    durationUs: e.durationUs,
    actor: e.actor as AuditEntry['actor'],
  };
  if (e.reason !== '') out.reason = e.reason;
  if (e.ip !== undefined) out.ip = e.ip;
  if (e.userAgent !== undefined) out.userAgent = e.userAgent;
  if (e.approvalId !== undefined) out.approvalId = e.approvalId;
  if (e.changes !== undefined) out.changes = e.changes;
  if (e.chainId !== undefined) out.chainId = e.chainId;
  if (e.chainSeq !== undefined) out.chainSeq = e.chainSeq;
  if (e.prevHash !== undefined) out.prevHash = e.prevHash;
  if (e.hash !== undefined) out.hash = e.hash;
  return out;
}

/** An approval request: `userId` is the owner, `respondedBy` whom it was decided for. */
export function approval(a: WireApproval): ApprovalRequest {
  const out: ApprovalRequest = {
    id: a.id,
    agentId: a.agentId,
    userId: a.ownerId,
    action: a.action,
    resource: a.resource,
    status: a.status as ApprovalStatus,
    expiresAt: date(a.expiresAt),
    createdAt: date(a.createdAt),
  };
  if (a.arguments !== undefined) out.arguments = a.arguments;
  const respondedAt = optDate(a.respondedAt);
  if (respondedAt !== undefined) out.respondedAt = respondedAt;
  if (a.onBehalfOf !== undefined && a.onBehalfOf !== '') out.respondedBy = a.onBehalfOf;
  if (a.respondedBy !== undefined && a.respondedBy !== '') out.respondedByKey = a.respondedBy;
  if (a.respondedByName !== undefined && a.respondedByName !== '') out.respondedByName = a.respondedByName;
  if (a.note !== undefined && a.note !== '') out.note = a.note;
  const usedAt = optDate(a.usedAt);
  if (usedAt !== undefined) out.usedAt = usedAt;
  if (a.url !== undefined && a.url !== '') out.url = a.url;
  return out;
}

/** An anomaly. */
export function anomaly(a: WireAnomaly): Anomaly {
  return {
    id: a.id,
    agentId: a.agentId,
    type: a.type as AnomalyType,
    severity: a.severity,
    detectedAt: date(a.detectedAt),
    description: a.description,
    evidence: a.evidence ?? {},
  };
}

/** A trust score. */
export function trust(t: WireTrust): TrustScore {
  return { agentId: t.agentId, score: t.score, level: t.level as TrustLevel, factors: t.factors, computedAt: t.computedAt };
}

/** An API key, without its secret. */
export function apiKey(k: WireKey): ApiKey {
  const out: ApiKey = {
    id: k.id,
    name: k.name,
    roles: (k.roles ?? []) as Role[],
    status: k.status as ApiKey['status'],
    expiresAt: optDate(k.expiresAt) ?? null,
    createdAt: date(k.createdAt),
  };
  if (k.createdBy !== undefined && k.createdBy !== '') out.createdBy = k.createdBy;
  const revokedAt = optDate(k.revokedAt);
  if (revokedAt !== undefined) out.revokedAt = revokedAt;
  return out;
}

/** A new API key, with its secret. */
export function apiKeyWithSecret(k: WireKey): ApiKeyWithSecret {
  return { ...apiKey(k), key: k.key ?? '' };
}

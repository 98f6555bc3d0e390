/**
 * Kavach's JSON, as docs/api.md and the Go package `api` define it: times
 * are RFC 3339 strings, owners are `ownerId`. Internal: `convert.ts` turns
 * these into the public shapes of `types.ts`.
 */
import type { JsonObject, JsonValue, PermissionConstraints } from './types.js';

export interface WirePermission {
  resource: string;
  actions: string[];
  constraints?: PermissionConstraints;
}

export interface WireAgent {
  id: string;
  ownerId: string;
  name: string;
  type: string;
  status: string;
  permissions: WirePermission[] | null;
  metadata: JsonObject | null;
  expiresAt: string | null;
  createdAt: string;
  updatedAt: string;
  revokedAt?: string;
  token?: string;
}

export interface WireAuthorizeResponse {
  allowed: boolean;
  code: string;
  reason: string;
  auditId: string;
  approvalId?: string;
  explanation?: JsonValue;
}

export interface WireGrant extends WirePermission {
  inherited?: { key: string; constraints: JsonObject }[];
  chain: { delegationId: string; index: number }[] | null;
  coveredBy: string;
}

export interface WireDelegation {
  id: string;
  fromAgent: string;
  toAgent: string;
  permissions: WireGrant[] | null;
  depth: number;
  maxDepth: number;
  status: string;
  expiresAt: string;
  createdAt: string;
  revokedAt?: string;
}

export interface WireEffectivePermission extends WirePermission {
  inheritedConstraints?: { from: string; constraints: JsonObject }[];
  source: string;
  delegationId?: string;
  fromAgent?: string;
  depth?: number;
  expiresAt?: string;
}

export interface WireAuditEntry {
  id: string;
  kind: string;
  agentId: string;
  ownerId: string;
  action: string;
  resource: string;
  arguments?: JsonValue;
  result: string;
  code: string;
  reason: string;
  ip?: string;
  userAgent?: string;
  durationUs: number;
  approvalId?: string;
  timestamp: string;
  actor: { type: string; id?: string; name?: string; onBehalfOf?: string };
  changes?: JsonValue;
  chainId?: string;
  chainSeq?: number;
  prevHash?: string;
  hash?: string;
}

export interface WireApproval {
  id: string;
  agentId: string;
  ownerId: string;
  action: string;
  resource: string;
  arguments?: JsonValue;
  status: string;
  expiresAt: string;
  createdAt: string;
  respondedAt?: string;
  respondedBy?: string;
  respondedByName?: string;
  onBehalfOf?: string;
  note?: string;
  usedAt?: string;
  url?: string;
}

export interface WireAnomaly {
  id: string;
  agentId: string;
  type: string;
  severity: string;
  detectedAt: string;
  description: string;
  evidence: JsonObject | null;
}

export interface WireTrust {
  agentId: string;
  score: number;
  level: string;
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
  computedAt: string;
}

export interface WireKey {
  id: string;
  name: string;
  roles: string[] | null;
  status: string;
  createdBy?: string;
  expiresAt: string | null;
  createdAt: string;
  revokedAt?: string;
  key?: string;
}

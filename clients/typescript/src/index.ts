/**
 * `@kavach/client`: a TypeScript client of the Kavach sidecar with
 * KavachOS's method names and result shapes. Depends on nothing but
 * `fetch`: Node 20+, browsers and edge runtimes.
 */
export { createKavach, defaultUrl, type Kavach, type KavachOptions } from './client.js';
export { ClientCodes, KavachError, isKavachError } from './errors.js';
export type { AgentModule } from './agents.js';
export type { AnomalyModule, TrustModule } from './anomalies.js';
export type { ApprovalModule } from './approvals.js';
export type { AuditModule } from './audit.js';
export type { AuthorizeMethods } from './authorize.js';
export type { DelegationModule } from './delegation.js';
export type { KeyModule } from './keys.js';
export type * from './types.js';

/** `kavach.authorize` and `kavach.authorizeByToken`: decisions (POST /v1/authorize). */
import * as convert from './convert.js';
import type { Transport } from './http.js';
import type { AuthorizeRequest, AuthorizeResult, RequestContext } from './types.js';
import type { WireAuthorizeResponse } from './wire.js';

/** The decision methods of a Kavach client. */
export interface AuthorizeMethods {
  /**
   * Whether the agent may do `action` on `resource`. A denial is a result
   * (`allowed: false`, with `code` and `reason`), not an error; errors are
   * for bad credentials and malformed requests. Needs a `decider` or
   * `admin` key. `context` (KavachOS's third argument) adds to
   * `request.context`.
   */
  authorize(agentId: string, request: AuthorizeRequest, context?: RequestContext): Promise<AuthorizeResult>;
  /**
   * The decision for the agent holding `token`. With an API key, the key is
   * the credential and the token goes in `Kavach-Agent-Token`; without
   * one, the token itself is the credential (the agent asking for itself).
   */
  authorizeByToken(token: string, request: AuthorizeRequest, context?: RequestContext): Promise<AuthorizeResult>;
}

interface AuthorizeBody {
  agentId?: string;
  action: string;
  resource: string;
  arguments?: Record<string, unknown>;
  context?: RequestContext;
  approvalId?: string;
}

function body(agentId: string | undefined, r: AuthorizeRequest, extra?: RequestContext): AuthorizeBody {
  const context: RequestContext = { ...(r.ip === undefined ? {} : { ip: r.ip }), ...r.context, ...extra };
  return {
    agentId,
    action: r.action,
    resource: r.resource,
    arguments: r.arguments,
    context: Object.keys(context).length > 0 ? context : undefined,
    approvalId: r.approvalId,
  };
}

/** The decision methods over t. */
export function authorizeMethods(t: Transport): AuthorizeMethods {
  const decide = async (b: AuthorizeBody, r: AuthorizeRequest, token?: string): Promise<AuthorizeResult> => {
    const byKey = t.hasKey;
    const res = await t.json<WireAuthorizeResponse>({
      method: 'POST',
      path: '/v1/authorize',
      query: { explain: r.explain === true ? 'true' : undefined },
      body: b,
      ...(token === undefined ? {} : byKey ? { agentToken: token } : { bearer: token }),
    });
    return convert.decision(res);
  };
  return {
    authorize: (agentId, request, context) => decide(body(agentId, request, context), request),
    authorizeByToken: (token, request, context) => decide(body(undefined, request, context), request, token),
  };
}

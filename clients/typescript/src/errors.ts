/** The error every method throws: an API error, a network failure or a timeout. */

/** Codes the client gives when the sidecar gave none. */
export const ClientCodes = {
  /** The request never got an answer (refused connection, DNS, reset). */
  network: 'network_error',
  /** No answer within `timeoutMs`. */
  timeout: 'timeout',
  /** An answer that is not the JSON Kavach sends. */
  badResponse: 'bad_response',
  /** An error status without Kavach's `{error: {code, message}}` body. */
  http: 'http_error',
  /** An ID no request is sent for (`.` or `..`, which a URL resolves as a path step). */
  invalidId: 'invalid_id',
} as const;

/**
 * A failed call. `code` is Kavach's stable code (`agent_not_found`,
 * `forbidden`, `delegation_escalation`, …) or one of {@link ClientCodes};
 * `status` is the HTTP status, 0 when there was no answer.
 */
export class KavachError extends Error {
  override readonly name = 'KavachError';
  /** Kavach's stable code, or one of {@link ClientCodes}. */
  readonly code: string;
  /** The HTTP status; 0 for a network failure or a timeout. */
  readonly status: number;
  /** What else the error body held, when it held more than code and message. */
  readonly details?: Record<string, unknown>;

  constructor(code: string, status: number, message: string, options?: { details?: Record<string, unknown>; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = status;
    if (options?.details !== undefined) {
      this.details = options.details;
    }
  }
}

/** Whether e is a {@link KavachError}, optionally with this code. */
export function isKavachError(e: unknown, code?: string): e is KavachError {
  return e instanceof KavachError && (code === undefined || e.code === code);
}

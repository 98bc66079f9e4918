import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, nonRetryableErrorTypes, errorMessage } from '../../../lib/errors.ts';

/** Hetzner error codes that mean "not here, not now": try another type/location, or later. */
const capacityCodes = new Set([
  'resource_unavailable', 'resource_limit_exceeded', 'placement_error', 'no_space_left_in_location', 'unavailable',
]);
/** Codes Hetzner documents as "retry": another action holds the lock, the resource changed, maintenance. */
const transientCodes = new Set(['server_error', 'service_error', 'timeout', 'maintenance', 'locked', 'conflict']);
const credentialCodes = new Set(['unauthorized', 'forbidden', 'token_readonly']);

/** A failed Hetzner call, typed with the project's ErrorType table. */
export class HetznerError extends Error {
  override readonly name = 'HetznerError';
  readonly type: ErrorType;
  /** Hetzner's `error.code` ("rate_limit_exceeded", "invalid_input", ...) or ours for transport failures. */
  readonly code: string;
  readonly status: number | undefined;
  /** For RateLimited: when the budget is whole again (from `RateLimit-Reset`). */
  readonly resetAt: Date | undefined;

  constructor(message: string, opts: { type: ErrorType; code: string; status?: number; resetAt?: Date; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.type = opts.type;
    this.code = opts.code;
    this.status = opts.status;
    this.resetAt = opts.resetAt;
  }

  get nonRetryable(): boolean {
    return nonRetryableErrorTypes.includes(this.type);
  }
}

/** Maps an HTTP status and Hetzner error code to the ErrorType table. */
export function classifyHetznerError(status: number, code: string): ErrorType {
  if (status === 429 || code === 'rate_limit_exceeded') return ErrorType.RateLimited;
  if (capacityCodes.has(code)) return ErrorType.CapacityUnavailable;
  if (code === 'invalid_server_type') return ErrorType.ServerTypeUnfit;
  if (status >= 500 || transientCodes.has(code)) return ErrorType.Transient;
  if (status === 404 || code === 'not_found') return ErrorType.NotFound;
  // A wrong or read-only token is not the request's fault: an operator must fix the configuration.
  if (status === 401 || credentialCodes.has(code)) return ErrorType.Misconfigured;
  return ErrorType.InvalidInput;
}

/**
 * Turns any error from the client into the ApplicationFailure an activity throws: non-retryable for
 * input/not-found/config, retryable otherwise, with `nextRetryDelay` at the rate-limit reset.
 */
export function toApplicationFailure(err: unknown): ApplicationFailure {
  if (!(err instanceof HetznerError)) {
    const message = errorMessage(err);
    return ApplicationFailure.create({ message, type: ErrorType.Transient, cause: err instanceof Error ? err : undefined });
  }
  const delayMs = err.resetAt ? Math.max(1000, err.resetAt.getTime() - Date.now()) : undefined;
  return ApplicationFailure.create({
    message: err.message,
    type: err.type,
    nonRetryable: err.nonRetryable,
    details: [{ code: err.code, status: err.status ?? null }],
    nextRetryDelay: delayMs,
    cause: err,
  });
}

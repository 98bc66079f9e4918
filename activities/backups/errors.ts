import { ApplicationFailure } from '@temporalio/common';
import { ErrorType, nonRetryableErrorTypes, errorMessage } from '../../lib/errors.ts';

/**
 * A backup or restore failure typed with the project's ErrorType table, as Temporal carries it
 * (`failure.type`); retryable unless the type says retrying cannot help.
 */
export function backupFailure(type: ErrorType, message: string, cause?: unknown): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: nonRetryableErrorTypes.includes(type),
    cause: cause instanceof Error ? cause : undefined,
  });
}

/** The ErrorType of a failure thrown by this module, or undefined for anything else. */
export function failureType(err: unknown): string | undefined {
  return err instanceof ApplicationFailure ? (err.type ?? undefined) : undefined;
}

/** Wraps anything that is not already typed as a Transient failure (dropped SSH, storage 5xx...). */
export function asTyped(err: unknown, context: string): ApplicationFailure {
  if (err instanceof ApplicationFailure && err.type) return err;
  const message = errorMessage(err);
  return backupFailure(ErrorType.Transient, `${context}: ${message}`, err);
}

/**
 * The one table of failure types. Activities throw ApplicationFailure with one of these as `type`;
 * workflows branch on `cause.type`, never on class names or messages.
 */
export const ErrorType = {
  /** Bad input that a retry cannot fix (validation, 4xx other than 429). */
  InvalidInput: 'InvalidInput',
  /** The thing asked for does not exist (404). */
  NotFound: 'NotFound',
  /** Rate limited; retry after the provider's reset time. */
  RateLimited: 'RateLimited',
  /** A provider's 5xx, a timeout, a dropped connection: retry with backoff. */
  Transient: 'Transient',
  /** The provider cannot give us this server type/location now, or our account limit is reached. */
  CapacityUnavailable: 'CapacityUnavailable',
  /** A server answered SSH with a host key other than the one we pinned. */
  HostKeyMismatch: 'HostKeyMismatch',
  /** A backup object failed verification (size, SHA-256, authentication tag). */
  BackupCorrupt: 'BackupCorrupt',
  /** An encryption key id is unknown, or the key does not open the data. */
  KeyUnavailable: 'KeyUnavailable',
  /** Deleting a server was refused because no verified backup of it exists. */
  NoVerifiedBackup: 'NoVerifiedBackup',
  /** Configuration is missing or wrong; an operator must fix it. */
  Misconfigured: 'Misconfigured',
  /**
   * The server (or its snapshot) cannot take this server type in place: the type's disk is smaller,
   * or its architecture or storage type differs (Hetzner's `invalid_server_type`). Another type or a
   * rebuild from a backup is needed; retrying the same change cannot work.
   */
  ServerTypeUnfit: 'ServerTypeUnfit',
} as const;

export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Failure types that retrying cannot fix; activities mark these non-retryable. */
export const nonRetryableErrorTypes: readonly ErrorType[] = [
  ErrorType.InvalidInput,
  ErrorType.NotFound,
  ErrorType.HostKeyMismatch,
  ErrorType.BackupCorrupt,
  ErrorType.KeyUnavailable,
  ErrorType.NoVerifiedBackup,
  ErrorType.Misconfigured,
  ErrorType.ServerTypeUnfit,
];

/** The message of anything thrown: an Error's message, else the value as a string. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// The ways a fetch can fail that a user must hear about in one sentence (no stack trace).
// `retryable` separates transient faults (dropped connection, 5xx, stall) from final ones
// (401/403/404, full disk, a checksum that keeps failing).

export type FetchErrorCode =
  | 'unauthorized' // 401: no token or a wrong one
  | 'forbidden' // 403: token lacks access (gated or private repository)
  | 'not-found' // 404: repository, revision or file does not exist
  | 'http' // another HTTP status (5xx, 429 are retryable)
  | 'network' // connection refused, reset, dropped mid-body
  | 'stalled' // no bytes for longer than the stall timeout
  | 'checksum' // the bytes do not match the hub's checksum or the size
  | 'disk-full' // ENOSPC, or not enough free space to start
  | 'bad-response' // the server answered something this client cannot use
  | 'aborted'; // the caller's AbortSignal fired

export class FetchError extends Error {
  readonly code: FetchErrorCode;
  readonly retryable: boolean;
  /** HTTP status when the failure came from a response. */
  readonly status: number | undefined;

  constructor(code: FetchErrorCode, message: string, options: { retryable?: boolean; status?: number } = {}) {
    super(message);
    this.name = 'FetchError';
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.status = options.status;
  }
}

/** The user-facing error for a final HTTP status, or a retryable one for transient statuses. */
export function httpStatusError(status: number, what: string, hint: string): FetchError {
  if (status === 401) {
    return new FetchError('unauthorized', `401 Unauthorized for ${what}: ${hint}`, { status });
  }
  if (status === 403) {
    return new FetchError('forbidden', `403 Forbidden for ${what}: the token has no access (gated or private repository? accept its terms on the hub, or use a token with read access)`, { status });
  }
  if (status === 404) {
    return new FetchError('not-found', `404 Not Found: ${what} does not exist (check the repository name, the revision and the path)`, { status });
  }
  const retryable = status === 408 || status === 429 || status >= 500;
  return new FetchError('http', `HTTP ${status} for ${what}`, { status, retryable });
}

// Secrets (the hub token) must never reach a log line, an error message or a progress event.
// Every string that leaves the fetch core passes through a Redactor built from the secrets in use.

export type Redactor = (text: string) => string;

const MASK = '***';

/** A function that replaces every occurrence of each non-empty secret by `***`. */
export function makeRedactor(secrets: readonly (string | undefined)[]): Redactor {
  const live = secrets.filter((s): s is string => typeof s === 'string' && s.length > 0);
  if (live.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const secret of live) out = out.split(secret).join(MASK);
    return out;
  };
}

// "Did you mean …": the closest candidate by Damerau-Levenshtein distance (optimal string
// alignment: insert, delete, substitute, swap two neighbours), within a threshold that grows
// with the length of the name, so `ar_difusion` finds `ar_diffusion` but `x` finds nothing.

/** Edit distance with adjacent transpositions; stops early once it exceeds `limit`. */
export function editDistance(a: string, b: string, limit = Infinity): number {
  if (a === b) return 0;
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  const rows = a.length + 1;
  const cols = b.length + 1;
  let prev2 = new Array<number>(cols).fill(0);
  let prev = Array.from({ length: cols }, (_, j) => j);
  let cur = new Array<number>(cols).fill(0);
  for (let i = 1; i < rows; i++) {
    cur[0] = i;
    let rowMin = i;
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, (prev2[j - 2] ?? 0) + 1);
      cur[j] = d;
      if (d < rowMin) rowMin = d;
    }
    if (rowMin > limit) return limit + 1;
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[cols - 1] ?? 0;
}

/** The most distance we accept for a name: 1 for short names, a third of the length for long ones. */
export const suggestionThreshold = (name: string): number => Math.max(1, Math.floor(name.length / 3));

/**
 * The candidate a user most likely meant by `name`, or undefined when none is close.
 * Order of preference: same name ignoring case; smallest edit distance within the threshold
 * (earlier candidates win ties); a candidate that is a prefix of the name or the name a prefix
 * of it (at least 3 characters: `integer` → `int`, `str` → `string`).
 */
export function suggest(name: string, candidates: Iterable<string>): string | undefined {
  const list = [...new Set(candidates)].filter((c) => c !== name);
  if (name.length === 0 || list.length === 0) return undefined;
  const lower = name.toLowerCase();
  const sameCase = list.find((c) => c.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  const limit = suggestionThreshold(name);
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const c of list) {
    const d = editDistance(lower, c.toLowerCase(), limit);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= limit) return best;
  const prefix = list.find((c) => {
    const lc = c.toLowerCase();
    return Math.min(lc.length, lower.length) >= 3 && (lower.startsWith(lc) || lc.startsWith(lower));
  });
  return prefix;
}

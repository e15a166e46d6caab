// Counter-based randomness for the built-in domain: every value is a pure function of
// (seed, stream, counter), so clip i is the same whatever N is, whichever process renders it,
// and in whatever order. No generator state is carried between clips.

/** murmur3's 32-bit finaliser: a bijective avalanche mix of one 32-bit word. */
export function mix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hashes a list of integers (each taken mod 2^32; non-negative integers up to 2^53 use both halves). */
export function hashInts(values: readonly number[]): number {
  let h = 0x9e3779b9;
  for (const v of values) {
    const lo = v >>> 0;
    const hi = Math.floor(v / 0x100000000) >>> 0;
    h = mix32(h ^ mix32(lo + 0x632be5ab));
    h = mix32(h ^ mix32(hi + 0x7f4a7c15));
  }
  return h;
}

/** FNV-1a over the UTF-8 bytes of a string, then mixed: the seed of a token's embedding. */
export function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  return mix32(h);
}

/**
 * A stream of uniforms keyed by `key`; draw k of the stream is hash(key, k). Two draws make one
 * uniform with 53 bits, so values are well spread even for fine-grained choices.
 */
export class CounterRng {
  private counter = 0;
  private readonly key: number;

  constructor(key: readonly number[]) {
    this.key = hashInts(key);
  }

  /** The next uniform in [0, 1). */
  uniform(): number {
    const a = mix32(this.key ^ mix32(this.counter * 2 + 1)) >>> 5; // 27 bits
    const b = mix32(mix32(this.key + 0x6a09e667) ^ mix32(this.counter * 2 + 2)) >>> 6; // 26 bits
    this.counter++;
    return (a * 67108864 + b) / 9007199254740992;
  }

  /** A uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.uniform();
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.min(n - 1, Math.floor(this.uniform() * n));
  }

  /** One element of a non-empty list. */
  pick<T>(items: readonly T[]): T {
    const item = items[this.int(items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** A standard normal (Box–Muller; one of the pair is used so the stream stays simple). */
  normal(): number {
    const u = 1 - this.uniform(); // (0, 1]
    const v = this.uniform();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

// Splits the text of one string token into literal text (escapes decoded) and `${...}` holes.
// The holes' contents are lexed and parsed separately (parse.ts); here we only find them.

const escapes: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', n: '\n', t: '\t', $: '$' };

export type RawStringPart =
  | { readonly kind: 'Text'; readonly text: string; readonly start: number; readonly end: number }
  /** `start`/`end` cover `${...}`; `innerStart`/`innerEnd` the expression text between. */
  | { readonly kind: 'Hole'; readonly start: number; readonly end: number; readonly innerStart: number; readonly innerEnd: number };

export interface StringProblem {
  readonly code: string;
  readonly message: string;
  readonly help?: string;
  readonly start: number;
  readonly end: number;
}

/**
 * Scan the token text `image` found at file offset `offset`. `terminated` says whether the
 * token ends with its closing quote. Offsets in the result are file offsets.
 */
export function scanString(
  image: string,
  offset: number,
  terminated: boolean,
): { parts: RawStringPart[]; problems: StringProblem[] } {
  const parts: RawStringPart[] = [];
  const problems: StringProblem[] = [];
  const stop = terminated ? image.length - 1 : image.length;
  let text = '';
  let textStart = 1;
  const flush = (at: number): void => {
    if (text.length > 0 || at > textStart) {
      parts.push({ kind: 'Text', text, start: offset + textStart, end: offset + at });
    }
    text = '';
  };
  let i = 1;
  while (i < stop) {
    const ch = image[i] ?? '';
    if (ch === '\\') {
      const next = image[i + 1];
      if (next === undefined || i + 1 >= stop) {
        problems.push({ code: 'bad-escape', message: 'a string cannot end with a lone `\\`', start: offset + i, end: offset + i + 1 });
        i += 1;
        continue;
      }
      const decoded = escapes[next];
      if (decoded === undefined) {
        problems.push({
          code: 'bad-escape',
          message: `unknown escape \`\\${next}\` in string`,
          help: 'the escapes are \\" \\\\ \\n \\t and \\$',
          start: offset + i,
          end: offset + i + 2,
        });
        text += next;
      } else {
        text += decoded;
      }
      i += 2;
    } else if (ch === '$' && image[i + 1] === '{') {
      const close = image.indexOf('}', i + 2);
      if (close < 0 || close >= stop) {
        problems.push({
          code: 'unterminated-interpolation',
          message: 'unterminated `${` in string',
          help: 'close it with `}`, or write `\\${` for a literal `${`',
          start: offset + i,
          end: offset + i + 2,
        });
        text += '${';
        i += 2;
        continue;
      }
      flush(i);
      if (image.slice(i + 2, close).trim() === '') {
        problems.push({
          code: 'empty-interpolation',
          message: 'empty `${}` in string',
          help: 'put a param or `stage.output` between the braces',
          start: offset + i,
          end: offset + close + 1,
        });
      } else {
        parts.push({ kind: 'Hole', start: offset + i, end: offset + close + 1, innerStart: offset + i + 2, innerEnd: offset + close });
      }
      i = close + 1;
      textStart = i;
    } else {
      text += ch;
      i += 1;
    }
  }
  flush(stop);
  if (parts.length === 0) parts.push({ kind: 'Text', text: '', start: offset + 1, end: offset + Math.max(1, stop) });
  return { parts, problems };
}

/** The source spelling of literal string text (inverse of the decoding above). */
export function escapeStringText(text: string): string {
  return text
    .replace(/\\/g, '\\\\')
    .replace(/"/g, '\\"')
    .replace(/\n/g, '\\n')
    .replace(/\t/g, '\\t')
    .replace(/\$\{/g, '\\${');
}

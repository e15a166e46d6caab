// parsePipeline: source text → AST + diagnostics. Never throws on any input: every problem
// becomes a Diagnostic with an accurate range. Steps: lex, scan strings (escapes, `${}` holes,
// each hole parsed on its own), parse with recovery, then the syntax-level checks.

import type { IRecognitionException, IToken } from 'chevrotain';
import type { Comment, Expression, PipelineFile, Statement, StringPart } from './ast.js';
import type { Diagnostic } from './diagnostic.js';
import { checkSyntax } from './checks.js';
import { cfLexer, LBracket, LCurly, RBracket, RCurly, shiftTokens, SingleQuotedString, StringLit, StringToken, tokenEnd } from './lexer.js';
import { LineIndex } from './lines.js';
import { describeToken, detailIndex, type ParseContext, type ProblemDetail } from './messages.js';
import { CfParser } from './parser.js';
import { scanString } from './strings.js';
import { tokenMatcher } from 'chevrotain';

/** Deeper nesting of `[`/`{` than this is refused before parsing (it would only be a mistake). */
const maxNesting = 64;

const context: ParseContext = { source: '', stageName: undefined, stageBrace: undefined, details: [] };
let sharedParser: CfParser | undefined;

/** The one parser of the process, built on first use so that importing grammar/ stays cheap. */
export function cfParser(): CfParser {
  sharedParser ??= new CfParser(context);
  return sharedParser;
}

export interface ParseResult {
  readonly file: PipelineFile;
  readonly diagnostics: Diagnostic[];
}

export function parsePipeline(path: string, source: string): ParseResult {
  const lines = new LineIndex(path, source);
  const problems: ProblemDetail[] = [];
  const parseProblems: ProblemDetail[] = [];
  context.details = [];

  const lexed = cfLexer().tokenize(source);
  for (const e of lexed.errors) problems.push(unknownCharacters(source, e.offset, e.length));
  const comments: Comment[] = (lexed.groups['comments'] ?? []).map((t) => ({
    text: t.image.replace(/\r$/, ''),
    range: lines.range(t.startOffset, t.startOffset + t.image.replace(/\r$/, '').length),
  }));

  const parser = cfParser();
  const strings = new Map<number, readonly StringPart[]>();
  for (const t of lexed.tokens) {
    if (tokenMatcher(t, StringLit)) strings.set(t.startOffset, stringParts(t, lines, parser, problems, parseProblems));
  }

  let statements: Statement[] = [];
  const tooDeep = firstTooDeep(lexed.tokens);
  if (tooDeep !== undefined) {
    problems.push({
      code: 'too-deep',
      message: `lists and maps nested more than ${maxNesting} deep`,
      start: tooDeep.startOffset,
      end: tooDeep.startOffset + 1,
    });
  } else {
    parser.begin(lexed.tokens, lines, strings);
    statements = parser.file();
    parseProblems.push(...collect(parser.errors, parser.problems));
  }

  const diagnostics = [...problems.map((p) => toDiagnostic(p, lines)), ...quietCascades(parseProblems, problems, lines)];
  const withDocs = attachDocs(statements, comments, source);
  const file: PipelineFile = { path, source, statements: withDocs, comments };
  diagnostics.push(...checkSyntax(file));
  diagnostics.sort((a, b) => (a.range?.start.offset ?? -1) - (b.range?.start.offset ?? -1));
  return { file, diagnostics };
}

function unknownCharacters(source: string, offset: number, length: number): ProblemDetail {
  const text = source.slice(offset, offset + length);
  const shown = [...text].map((c) => (/[\p{L}\p{N}\p{P}\p{S}]/u.test(c) ? c : `\\u{${c.codePointAt(0)?.toString(16)}}`)).join('');
  const several = [...text].length > 1;
  let help: string | undefined;
  if (text.startsWith("'")) help = 'strings are written in double quotes: "like this"';
  else if (text.startsWith('-')) help = 'a negative number is written with the `-` right before its digits, e.g. `-1`';
  return {
    code: 'unknown-character',
    message: several ? `unknown characters \`${shown}\`` : `unknown character \`${shown}\``,
    ...(help ? { help } : {}),
    start: offset,
    end: offset + length,
  };
}

/** Decode one string token; parse each `${...}` hole with the shared parser. */
function stringParts(
  t: IToken,
  lines: LineIndex,
  parser: CfParser,
  problems: ProblemDetail[],
  parseProblems: ProblemDetail[],
): StringPart[] {
  if (t.tokenType === SingleQuotedString) {
    const inner = t.image.slice(1, -1);
    problems.push({
      code: 'single-quotes',
      message: 'strings are written in double quotes',
      help: `write "${inner.replace(/["\\]/g, (c) => `\\${c}`)}"`,
      start: t.startOffset,
      end: tokenEnd(t),
    });
    return [{ kind: 'Text', text: inner, range: lines.range(t.startOffset + 1, tokenEnd(t) - 1) }];
  }
  const terminated = t.tokenType === StringToken;
  if (!terminated) {
    problems.push({
      code: 'unterminated-string',
      message: 'unterminated string',
      help: 'close it with `"` on the same line',
      start: t.startOffset,
      end: t.startOffset + t.image.length,
    });
  }
  const scanned = scanString(t.image, t.startOffset, terminated);
  problems.push(...scanned.problems);
  const parts: StringPart[] = [];
  for (const p of scanned.parts) {
    if (p.kind === 'Text') {
      parts.push({ kind: 'Text', text: p.text, range: lines.range(p.start, p.end) });
      continue;
    }
    const expr = parseHole(lines, p.innerStart, p.innerEnd, parser, problems, parseProblems);
    if (expr) parts.push({ kind: 'Interpolation', expr, range: lines.range(p.start, p.end) });
  }
  return parts;
}

function parseHole(
  lines: LineIndex,
  start: number,
  end: number,
  parser: CfParser,
  problems: ProblemDetail[],
  parseProblems: ProblemDetail[],
): Expression | undefined {
  const lexed = cfLexer().tokenize(lines.source.slice(start, end));
  for (const e of lexed.errors) problems.push(unknownCharacters(lines.source, start + e.offset, e.length));
  if (lexed.errors.length > 0) return undefined;
  const tokens = shiftTokens(lexed.tokens, start);
  const nested = tokens.find((t) => tokenMatcher(t, StringLit));
  if (nested) {
    problems.push({
      code: 'bad-interpolation',
      message: 'a string cannot appear inside `${...}`',
      help: 'put the text outside the braces: "a${x}b"',
      start: nested.startOffset,
      end: tokenEnd(nested),
    });
    return undefined;
  }
  if (firstTooDeep(tokens) !== undefined) {
    problems.push({ code: 'too-deep', message: 'interpolation nested too deep', start, end });
    return undefined;
  }
  parser.begin(tokens, lines, new Map());
  const expr = parser.hole();
  const errors = collect(parser.errors, parser.problems);
  const first = parser.errors[0];
  if (first?.name === 'NotAllInputParsedException') {
    parseProblems.push({
      code: 'bad-interpolation',
      message: `unexpected ${describeToken(first.token)} in \`\${...}\``,
      help: 'an interpolation holds one value: a param, a fan-out variable or `stage.output`',
      start: first.token.startOffset,
      end: tokenEnd(first.token),
    });
  } else {
    parseProblems.push(...errors);
  }
  return errors.length === 0 ? expr : undefined;
}

function collect(errors: readonly IRecognitionException[], fromActions: readonly ProblemDetail[]): ProblemDetail[] {
  const out: ProblemDetail[] = [];
  for (const e of errors) {
    const index = detailIndex(e.message);
    const detail = index === undefined ? undefined : context.details[index];
    if (detail) out.push(detail);
    else {
      // Not produced by our provider (should not happen); still a readable sentence.
      const t = e.token;
      const start = Number.isFinite(t.startOffset) && t.startOffset >= 0 ? t.startOffset : context.source.length;
      out.push({ code: 'syntax', message: `unexpected ${describeToken(t)}`, start, end: start + t.image.length });
    }
  }
  // Problems found by actions are the more specific ones: they win ties on the same spot.
  return [...fromActions, ...out];
}

/**
 * One typo can trip the parser more than once. Keep the first problem of each line: lexer and
 * string problems always count, and a parse problem on a line that already has one is dropped.
 */
function quietCascades(parse: ProblemDetail[], lexical: ProblemDetail[], lines: LineIndex): Diagnostic[] {
  const taken = new Set(lexical.map((p) => lines.lineOf(p.start)));
  const out: Diagnostic[] = [];
  for (const p of [...parse].sort((a, b) => a.start - b.start)) {
    const line = lines.lineOf(p.start);
    if (taken.has(line)) continue;
    taken.add(line);
    out.push(toDiagnostic(p, lines));
  }
  return out;
}

function toDiagnostic(p: ProblemDetail, lines: LineIndex): Diagnostic {
  return {
    severity: 'error',
    code: p.code,
    message: p.message,
    range: lines.range(p.start, p.end),
    ...(p.help !== undefined ? { help: p.help } : {}),
    ...(p.related && p.related.length > 0
      ? { related: p.related.map((r) => ({ message: r.message, range: lines.range(r.start, r.end) })) }
      : {}),
  };
}

function firstTooDeep(tokens: readonly IToken[]): IToken | undefined {
  let depth = 0;
  for (const t of tokens) {
    if (t.tokenType === LBracket || t.tokenType === LCurly) {
      depth += 1;
      if (depth > maxNesting) return t;
    } else if (t.tokenType === RBracket || t.tokenType === RCurly) {
      depth = Math.max(0, depth - 1);
    }
  }
  return undefined;
}

/**
 * A param's doc: the `#` lines right above it (no blank line between, the param first on its
 * line), else the comment right after it on its last line. The same rules as the formatter's
 * own-line and trailing comments, so formatting never changes a doc.
 */
function attachDocs(statements: Statement[], comments: readonly Comment[], source: string): Statement[] {
  if (comments.length === 0) return statements;
  const byLine = new Map<number, Comment>();
  for (const c of comments) byLine.set(c.range.start.line, c);
  // `;` and `,` are separators the formatter drops, so they do not make a comment trailing.
  const ownLine = (c: Comment): boolean => /^[\s,;]*$/.test(source.slice(c.range.start.offset - c.range.start.column + 1, c.range.start.offset));
  const docText = (c: Comment): string => c.text.replace(/^#\s?/, '').trimEnd();
  return statements.map((s) => {
    if (s.kind !== 'Param') return s;
    const above: string[] = [];
    const startsLine = /^[\s,;]*$/.test(source.slice(s.range.start.offset - s.range.start.column + 1, s.range.start.offset));
    for (let line = s.range.start.line - 1; startsLine; line--) {
      const c = byLine.get(line);
      if (!c || !ownLine(c)) break;
      above.unshift(docText(c));
    }
    if (above.length > 0) return { ...s, doc: above.join('\n') };
    const trailing = byLine.get(s.range.end.line);
    if (trailing && trailing.range.start.offset >= s.range.end.offset && /^[ \t,;]*$/.test(source.slice(s.range.end.offset, trailing.range.start.offset))) {
      return { ...s, doc: docText(trailing) };
    }
    return s;
  });
}

// Parser error messages that read like a person wrote them. Chevrotain asks this provider for
// a message whenever it records an error; we answer with a key into `context.details`, where
// the full diagnostic (code, sentence, help, place, related places) waits for parse.ts.

import { EOF, tokenMatcher, type IParserErrorMessageProvider, type IToken, type TokenType } from 'chevrotain';
import * as T from './lexer.js';
import { suggest } from './suggest.js';

export interface ProblemDetail {
  readonly code: string;
  readonly message: string;
  readonly help?: string;
  /** File offsets of the place to point at ([start, end), may be empty). */
  readonly start: number;
  readonly end: number;
  readonly related?: readonly { readonly message: string; readonly start: number; readonly end: number }[];
}

/** What the parser is in the middle of, for messages that name it. */
export interface ParseContext {
  source: string;
  stageName: string | undefined;
  stageBrace: IToken | undefined;
  details: ProblemDetail[];
}

export const detailKey = (index: number): string => `\u0000cf#${index}`;
export const detailIndex = (message: string): number | undefined => {
  const m = /^\u0000cf#(\d+)$/.exec(message);
  return m ? Number(m[1]) : undefined;
};

const isEof = (t: IToken): boolean => t.tokenType === EOF || !Number.isFinite(t.startOffset);
const isReal = (t: IToken | undefined): t is IToken =>
  t !== undefined && !t.isInsertedInRecovery && Number.isFinite(t.startOffset) && t.startOffset >= 0;

const punctuation: Readonly<Record<string, string>> = {
  LCurly: '{', RCurly: '}', LBracket: '[', RBracket: ']', Colon: ':', Comma: ',', Semicolon: ';',
  Equals: '=', Star: '*', Dot: '.', DotDot: '..',
};

/** How a token is named in a sentence: "end of file", "a string", "`foo`", "keyword `stage`". */
export function describeToken(t: IToken): string {
  if (isEof(t)) return 'end of file';
  if (tokenMatcher(t, T.StringLit)) return 'a string';
  if (tokenMatcher(t, T.Keyword)) return `keyword \`${t.image}\``;
  if (t.tokenType === T.NumberToken) return `the number \`${t.image}\``;
  return `\`${t.image}\``;
}

/** How an expected token type is named: "`}`", "a name", "a string". */
export function describeType(type: TokenType): string {
  const p = punctuation[type.name];
  if (p !== undefined) return `\`${p}\``;
  if (type === T.Identifier) return 'a name';
  if (type === T.StringLit) return 'a string';
  if (type === T.NumberToken) return 'a number';
  if (type === EOF) return 'end of file';
  return `\`${type.name}\``;
}

const sameLine = (ctx: ParseContext, a: IToken, b: IToken): boolean =>
  isReal(a) && isReal(b) && !ctx.source.slice(T.tokenEnd(a), b.startOffset).includes('\n');

/**
 * Where to point for "expected X after PREV": at the offending token when it is on the same
 * line as PREV, otherwise just after PREV (where the missing thing belongs).
 */
function anchor(ctx: ParseContext, actual: IToken, previous: IToken | undefined): { start: number; end: number; onLine: boolean } {
  if (isReal(actual) && (!isReal(previous) || sameLine(ctx, previous, actual))) {
    return { start: actual.startOffset, end: T.tokenEnd(actual), onLine: true };
  }
  if (isReal(previous)) {
    const at = T.tokenEnd(previous);
    return { start: at, end: at, onLine: false };
  }
  return { start: ctx.source.length, end: ctx.source.length, onLine: false };
}

const startsStatement = (t: IToken): boolean =>
  isEof(t) || [T.Pipeline, T.Include, T.Param, T.Default, T.Provide, T.Stage].some((k) => t.tokenType === k);

function statementHelp(t: IToken): string {
  if (t.tokenType === T.Identifier) {
    const near = suggest(t.image, T.statementKeywords);
    if (near !== undefined) return `did you mean \`${near}\`?`;
  }
  return 'a statement starts with `pipeline`, `include`, `param`, `default`, `provide` or `stage`';
}

function mismatch(ctx: ParseContext, expected: TokenType, actual: IToken, previous: IToken, rule: string): Omit<ProblemDetail, 'start' | 'end'> & { at?: 'actual' } {
  const prev = isReal(previous) ? `\`${previous.image}\`` : 'this';
  const stage = ctx.stageName !== undefined ? `stage \`${ctx.stageName}\`` : 'the stage';
  const braceNote = (): ProblemDetail['related'] =>
    isReal(ctx.stageBrace)
      ? [{ message: `${stage} opened here`, start: ctx.stageBrace.startOffset, end: ctx.stageBrace.startOffset + 1 }]
      : undefined;
  switch (expected) {
    case EOF:
      if (actual.tokenType === T.RCurly) {
        return { code: 'unexpected-token', message: 'unexpected `}`', help: 'there is no open stage or map here to close', at: 'actual' };
      }
      return { code: 'expected-statement', message: `expected a statement, found ${describeToken(actual)}`, help: statementHelp(actual), at: 'actual' };
    case T.RCurly:
      if (rule === 'stageDecl') {
        if (startsStatement(actual)) {
          return { code: 'unclosed-stage', message: `expected \`}\` to close ${stage}`, related: braceNote() };
        }
        return {
          code: 'unexpected-token',
          message: `unexpected ${describeToken(actual)} in ${stage}`,
          help: 'a stage body holds `name = value`, `output name: type` and `publish output to "path"` items',
          at: 'actual',
        };
      }
      if (rule === 'mapLiteral') {
        return startsStatement(actual)
          ? { code: 'unclosed-map', message: 'expected `}` to close the map' }
          : { code: 'unexpected-token', message: `unexpected ${describeToken(actual)} in a map`, help: 'map entries are written `key: value`', at: 'actual' };
      }
      break;
    case T.RBracket:
      if (rule === 'listLiteral') {
        return startsStatement(actual) || actual.tokenType === T.RCurly
          ? { code: 'unclosed-list', message: 'expected `]` to close the list' }
          : { code: 'unexpected-token', message: `unexpected ${describeToken(actual)} in a list`, help: 'list items are values separated by commas or new lines', at: 'actual' };
      }
      if (rule === 'fanOut') return { code: 'expected-token', message: `expected \`]\` to close the fan-out of ${stage}` };
      if (rule === 'reference') return { code: 'expected-token', message: 'expected `]` after the index' };
      break;
    case T.Equals:
      if (rule === 'assignment') {
        return {
          code: 'expected-token',
          message: `expected \`=\` after ${prev}`,
          help: actual.tokenType === T.Colon ? 'stage items are written `name = value` (`:` is for map entries)' : 'stage items are written `name = value`',
        };
      }
      if (rule === 'provideDecl') return { code: 'expected-token', message: `expected \`=\` and a path after \`provide ${previous.image}\`` };
      break;
    case T.Colon:
      if (rule === 'stageDecl') return { code: 'expected-token', message: `expected \`:\` and a stage kind after ${stage}`, help: `write \`stage ${ctx.stageName ?? 'name'}: kind { ... }\`` };
      if (rule === 'paramDecl') return { code: 'expected-token', message: `expected \`:\` and a type after param ${prev}`, help: `write \`param ${isReal(previous) ? previous.image : 'name'}: type = value\`` };
      if (rule === 'outputDecl') return { code: 'expected-token', message: `expected \`:\` and an artifact type after output ${prev}`, help: 'write `output name: file`' };
      if (rule === 'mapEntry') {
        return {
          code: 'expected-token',
          message: `expected \`:\` after map key ${prev}`,
          help: actual.tokenType === T.Equals ? 'map entries are written `key: value`; is a `}` missing before this line?' : 'map entries are written `key: value`',
        };
      }
      break;
    case T.LCurly:
      if (rule === 'stageDecl') return { code: 'expected-token', message: `expected \`{\` to open the body of ${stage}` };
      break;
    case T.In:
      return { code: 'expected-token', message: `expected \`in\` after fan-out variable ${prev}`, help: 'write `stage name[var in 0..4]: kind { ... }`' };
    case T.To:
      return { code: 'expected-token', message: `expected \`to\` after \`publish ${previous.image}\``, help: 'write `publish output to "path"`' };
    case T.StringLit:
      return { code: 'expected-token', message: `expected a string after ${prev}` };
    case T.Identifier: {
      const what: Record<string, string> = {
        stage: 'a stage name',
        param: 'a param name',
        output: 'an output name',
        publish: 'the name of an output',
        default: 'a target stage name',
        '.': 'an output name',
        ',': 'a name',
        '[': 'a fan-out variable',
      };
      if (rule === 'stageDecl' && previous.tokenType === T.Colon) return { code: 'expected-token', message: 'expected a stage kind after `:`' };
      if ((rule === 'paramDecl' || rule === 'outputDecl') && previous.tokenType === T.Colon) {
        return { code: 'expected-token', message: 'expected a type after `:`' };
      }
      if (rule === 'defaultDecl') return { code: 'expected-token', message: `expected a target stage name after ${prev}` };
      const thing = isReal(previous) ? what[previous.image] : undefined;
      const keywordHint = tokenMatcher(actual, T.Keyword) && sameLine(ctx, previous, actual) ? `\`${actual.image}\` is a keyword and cannot be used as a name` : undefined;
      return { code: 'expected-token', message: `expected ${thing ?? 'a name'} after ${prev}`, ...(keywordHint ? { help: keywordHint } : {}) };
    }
    default:
      break;
  }
  return { code: 'expected-token', message: `expected ${describeType(expected)} after ${prev}` };
}

function withFound(ctx: ParseContext, d: Omit<ProblemDetail, 'start' | 'end'> & { at?: 'actual' }, actual: IToken, previous: IToken): ProblemDetail {
  const place = d.at === 'actual' && isReal(actual) ? { start: actual.startOffset, end: T.tokenEnd(actual), onLine: false } : anchor(ctx, actual, previous);
  const message = place.onLine ? `${d.message}, found ${describeToken(actual)}` : d.message;
  const { at: _at, ...rest } = d;
  return { ...rest, message, start: place.start, end: place.end };
}

export function messageProvider(ctx: ParseContext): IParserErrorMessageProvider {
  const record = (d: ProblemDetail): string => {
    ctx.details.push(d);
    return detailKey(ctx.details.length - 1);
  };
  return {
    buildMismatchTokenMessage({ expected, actual, previous, ruleName }) {
      return record(withFound(ctx, mismatch(ctx, expected, actual, previous, ruleName), actual, previous));
    },
    buildNotAllInputParsedMessage({ firstRedundant }) {
      return record(withFound(ctx, mismatch(ctx, EOF, firstRedundant, firstRedundant, 'file'), firstRedundant, firstRedundant));
    },
    buildNoViableAltMessage({ actual, previous, ruleName }) {
      const first = actual[0] ?? previous;
      const prev = isReal(previous) ? `\`${previous.image}\`` : 'this';
      let d: Omit<ProblemDetail, 'start' | 'end'>;
      if (ruleName === 'reference') d = { code: 'expected-value', message: 'expected an index or `*` inside `[...]`' };
      else if (ruleName === 'mapEntry') d = { code: 'expected-token', message: 'expected a map key', help: 'map entries are written `key: value`' };
      else d = { code: 'expected-value', message: `expected a value after ${prev}` };
      return record(withFound(ctx, d, first, previous));
    },
    buildEarlyExitMessage({ actual, previous }) {
      const first = actual[0] ?? previous;
      return record(withFound(ctx, { code: 'expected-token', message: `unexpected ${describeToken(first)}` }, first, previous));
    },
  };
}

/** A problem found by a parser action (not by chevrotain), e.g. a missing value. */
export function expectedAfter(ctx: ParseContext, code: string, what: string, previous: IToken, actual: IToken, help?: string): ProblemDetail {
  return withFound(ctx, { code, message: `expected ${what} after \`${previous.image}\``, ...(help ? { help } : {}) }, actual, previous);
}

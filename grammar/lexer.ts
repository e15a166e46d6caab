// Tokens of the .cf language and the one lexer instance per process. Positions are tracked as
// offsets only (lines.ts turns them into line/column), which keeps lexing and startup cheap.

import { createToken, Lexer, type IToken, type TokenType } from 'chevrotain';

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\uFEFF]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n]*/, group: 'comments' });

/** Both string tokens below: the parser accepts either, the unterminated one is reported. */
export const StringLit = createToken({ name: 'StringLit', pattern: Lexer.NA });
export const StringToken = createToken({
  name: 'String',
  pattern: /"(?:[^"\\\n]|\\[^\n])*"/,
  categories: [StringLit],
});
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\n]|\\[^\n])*\\?/,
  categories: [StringLit],
});

/** 'text': not the language's string syntax, but read as a string so one error is reported. */
export const SingleQuotedString = createToken({
  name: 'SingleQuotedString',
  pattern: /'[^'\n]*'/,
  categories: [StringLit],
});

export const NumberToken = createToken({ name: 'Number', pattern: /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/ });
export const DotDot = createToken({ name: 'DotDot', pattern: /\.\./ });
export const Dot = createToken({ name: 'Dot', pattern: /\./ });
export const LCurly = createToken({ name: 'LCurly', pattern: /\{/ });
export const RCurly = createToken({ name: 'RCurly', pattern: /\}/ });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/ });
export const RBracket = createToken({ name: 'RBracket', pattern: /\]/ });
export const Colon = createToken({ name: 'Colon', pattern: /:/ });
export const Comma = createToken({ name: 'Comma', pattern: /,/ });
export const Semicolon = createToken({ name: 'Semicolon', pattern: /;/ });
export const Equals = createToken({ name: 'Equals', pattern: /=/ });
export const Star = createToken({ name: 'Star', pattern: /\*/ });

export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/ });

/** Every keyword is also a `Keyword`, so map keys may be spelled like keywords. */
export const Keyword = createToken({ name: 'Keyword', pattern: Lexer.NA });
const keyword = (word: string): TokenType =>
  createToken({ name: word, pattern: new RegExp(word), longer_alt: Identifier, categories: [Keyword] });

export const Pipeline = keyword('pipeline');
export const Include = keyword('include');
export const Param = keyword('param');
export const Default = keyword('default');
export const Provide = keyword('provide');
export const Stage = keyword('stage');
export const Output = keyword('output');
export const Publish = keyword('publish');
export const To = keyword('to');
export const In = keyword('in');
export const True = keyword('true');
export const False = keyword('false');

/** The words that begin a top-level statement (used by messages and did-you-mean). */
export const statementKeywords: readonly string[] = ['pipeline', 'include', 'param', 'default', 'provide', 'stage'];
export const keywordTokens: readonly TokenType[] = [
  Pipeline, Include, Param, Default, Provide, Stage, Output, Publish, To, In, True, False,
];

// Order matters: longer and more specific patterns first; keywords before Identifier.
export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  StringLit,
  StringToken,
  UnterminatedString,
  SingleQuotedString,
  NumberToken,
  DotDot,
  Dot,
  LCurly,
  RCurly,
  LBracket,
  RBracket,
  Colon,
  Comma,
  Semicolon,
  Equals,
  Star,
  Keyword,
  ...keywordTokens,
  Identifier,
];

let lexer: Lexer | undefined;

/** The shared lexer, built on first use. */
export function cfLexer(): Lexer {
  lexer ??= new Lexer(allTokens, {
    positionTracking: 'onlyOffset',
    ensureOptimizations: false,
    skipValidations: true,
  });
  return lexer;
}

/** The lexer with chevrotain's validations on (tests check the token set with it). */
export function validatedLexer(): Lexer {
  return new Lexer(allTokens, { positionTracking: 'onlyOffset', skipValidations: false });
}

/** Shift tokens lexed from a slice of a file back to file offsets. */
export function shiftTokens(tokens: IToken[], by: number): IToken[] {
  for (const t of tokens) {
    t.startOffset += by;
    if (t.endOffset !== undefined) t.endOffset += by;
  }
  return tokens;
}

/** The offset just past a token (the lexer tracks start offsets only). */
export const tokenEnd = (t: IToken): number => t.startOffset + t.image.length;

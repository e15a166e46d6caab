// The .cf parser: a chevrotain EmbeddedActionsParser that builds the AST of ast.ts directly.
// One instance per process (construction analyses the grammar, ~tens of ms), reused for every
// file and for every `${...}` hole. Error recovery is on; messages come from messages.ts.
//
// Layout rules the grammar relies on (there is no newline token):
// * items of a stage body, map or list are separated by `,`, `;` or nothing (a new line);
//   this works because no value can continue with a name, so a new item always starts clean;
// * `ode[2].x` needs the `[` right after the name, so a list `[a [1]]` stays two items.

import { EmbeddedActionsParser, tokenMatcher, type IToken } from 'chevrotain';
import type {
  Assignment,
  DefaultDecl,
  Expression,
  FanOut,
  Identifier,
  IncludeDecl,
  ListLiteral,
  MapEntry,
  MapLiteral,
  NameRef,
  OutputDecl,
  OutputRef,
  ParamDecl,
  PipelineDecl,
  ProvideDecl,
  PublishDecl,
  SourceRange,
  StageDecl,
  StageItem,
  Statement,
  StringLiteral,
  StringPart,
  TypeName,
} from './ast.js';
import { LineIndex } from './lines.js';
import * as T from './lexer.js';
import { tokenEnd } from './lexer.js';
import { expectedAfter, messageProvider, type ParseContext, type ProblemDetail } from './messages.js';

const isReal = (t: IToken | undefined): t is IToken =>
  t !== undefined && !t.isInsertedInRecovery && Number.isFinite(t.startOffset) && t.startOffset >= 0;

/** A stage whose body is being parsed; becomes the recovery value when `}` never comes. */
interface OpenStage {
  keyword: IToken;
  name: IToken;
  fanOut: FanOut | undefined;
  kind: IToken | undefined;
  items: StageItem[];
}

export class CfParser extends EmbeddedActionsParser {
  readonly context: ParseContext;
  /** Per parse: positions, pre-parsed string parts by token offset, problems found by actions. */
  lines = new LineIndex('', '');
  strings = new Map<number, readonly StringPart[]>();
  problems: ProblemDetail[] = [];
  private openStage: OpenStage | undefined;

  constructor(context: ParseContext, validate = false) {
    super(T.allTokens, {
      recoveryEnabled: true,
      maxLookahead: 2,
      skipValidations: !validate,
      errorMessageProvider: messageProvider(context),
    });
    this.context = context;
    this.performSelfAnalysis();
  }

  /** Start a parse of one token stream of `lines.file`. */
  begin(tokens: IToken[], lines: LineIndex, strings: Map<number, readonly StringPart[]>): void {
    this.lines = lines;
    this.strings = strings;
    this.problems = [];
    this.openStage = undefined;
    this.statements = [];
    this.context.source = lines.source;
    this.context.stageName = undefined;
    this.context.stageBrace = undefined;
    this.input = tokens;
  }

  // ------------------------------------------------------------------------------------------
  // helpers (called only from ACTIONs or GATEs, never while the grammar is being recorded)

  private span(start: number, end: number): SourceRange {
    return this.lines.range(start, end);
  }

  /** From the start of `first` to the end of the last token consumed so far. */
  private from(first: IToken | number): SourceRange {
    const start = typeof first === 'number' ? first : first.startOffset;
    const last = this.LA(0);
    return this.span(start, isReal(last) ? Math.max(start, tokenEnd(last)) : start);
  }

  private ident(t: IToken): Identifier | undefined {
    return isReal(t) ? { kind: 'Identifier', name: t.image, range: this.span(t.startOffset, tokenEnd(t)) } : undefined;
  }

  private typeName(t: IToken): TypeName | undefined {
    return isReal(t) ? { kind: 'TypeName', name: t.image, range: this.span(t.startOffset, tokenEnd(t)) } : undefined;
  }

  private stringNode(t: IToken): StringLiteral | undefined {
    if (!isReal(t)) return undefined;
    const range = this.span(t.startOffset, tokenEnd(t));
    const parts = this.strings.get(t.startOffset) ?? [{ kind: 'Text', text: '', range }];
    return { kind: 'String', parts, range };
  }

  /**
   * True when the name after `=`, `:` or `.` is on a later line: a value that is a name must
   * start on the line of its `=`, so `x =` followed by `y = 1` reports the missing value of
   * `x` instead of reading `y` as it.
   */
  private nextStartsItem(after: IToken): boolean {
    const next = this.LA(1);
    if (!isReal(next) || !isReal(after)) return false;
    if (!tokenMatcher(next, T.Identifier) && !tokenMatcher(next, T.Keyword)) return false;
    return this.lines.source.slice(tokenEnd(after), next.startOffset).includes('\n');
  }

  /** `= value` / `: value`: the value, or a "expected a value" problem when there is none. */
  private valueAfter(sep: IToken): Expression | undefined {
    let value: Expression | undefined;
    let tried = false;
    this.OPTION9({
      GATE: () => !this.nextStartsItem(sep),
      DEF: () => {
        tried = true;
        value = this.SUBRULE9(this.value);
      },
    });
    this.ACTION(() => {
      if (!tried && isReal(sep)) {
        this.problems.push(expectedAfter(this.context, 'expected-value', 'a value', sep, this.LA(1)));
      }
    });
    return value;
  }

  // ------------------------------------------------------------------------------------------
  // statements

  /** Statements parsed so far; also what `file` returns when recovery gives up on the rest. */
  private statements: Statement[] = [];

  file = this.RULE(
    'file',
    (): Statement[] => {
    const statements: Statement[] = [];
    this.ACTION(() => {
      this.statements = statements;
    });
    this.MANY(() => {
      const s = this.OR([
        { ALT: () => this.SUBRULE(this.pipelineDecl) },
        { ALT: () => this.SUBRULE(this.includeDecl) },
        { ALT: () => this.SUBRULE(this.paramDecl) },
        { ALT: () => this.SUBRULE(this.defaultDecl) },
        { ALT: () => this.SUBRULE(this.provideDecl) },
        { ALT: () => this.SUBRULE(this.stageDecl) },
        {
          ALT: () => {
            this.CONSUME(T.Semicolon);
            return undefined;
          },
        },
      ]);
      this.ACTION(() => {
        if (s) statements.push(s);
      });
    });
    return statements;
    },
    { recoveryValueFunc: () => this.statements },
  );

  pipelineDecl = this.RULE('pipelineDecl', (): PipelineDecl | undefined => {
    const kw = this.CONSUME(T.Pipeline);
    const name = this.SUBRULE(this.stringLiteral);
    return this.ACTION(() => (name ? { kind: 'Pipeline', name, range: this.from(kw) } : undefined));
  });

  includeDecl = this.RULE('includeDecl', (): IncludeDecl | undefined => {
    const kw = this.CONSUME(T.Include);
    const path = this.SUBRULE(this.stringLiteral);
    return this.ACTION(() => (path ? { kind: 'Include', path, range: this.from(kw) } : undefined));
  });

  paramDecl = this.RULE('paramDecl', (): ParamDecl | undefined => {
    const kw = this.CONSUME(T.Param);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    const type = this.CONSUME2(T.Identifier);
    let value: Expression | undefined;
    let hasEquals = false;
    this.OPTION(() => {
      const eq = this.CONSUME(T.Equals);
      hasEquals = true;
      value = this.valueAfter(eq);
    });
    return this.ACTION(() => {
      const id = this.ident(name);
      const tn = this.typeName(type);
      if (!id || !tn || (hasEquals && !value)) return undefined;
      return { kind: 'Param', name: id, type: tn, ...(value ? { default: value } : {}), range: this.from(kw) };
    });
  });

  defaultDecl = this.RULE('defaultDecl', (): DefaultDecl | undefined => {
    const kw = this.CONSUME(T.Default);
    const names: IToken[] = [this.CONSUME(T.Identifier)];
    this.MANY(() => {
      this.OPTION(() => this.CONSUME(T.Comma));
      names.push(this.CONSUME2(T.Identifier));
    });
    return this.ACTION(() => {
      const targets = names.map((n) => this.ident(n)).filter((n): n is Identifier => n !== undefined);
      return targets.length > 0 ? { kind: 'Default', targets, range: this.from(kw) } : undefined;
    });
  });

  provideDecl = this.RULE('provideDecl', (): ProvideDecl | undefined => {
    const kw = this.CONSUME(T.Provide);
    const target = this.SUBRULE(this.reference);
    const eq = this.CONSUME(T.Equals);
    const path = this.valueAfter(eq);
    return this.ACTION(() => {
      if (target && target.kind !== 'OutputRef') {
        this.problems.push({
          code: 'expected-output-ref',
          message: `\`provide\` needs a stage output, found \`${target.name.name}\``,
          help: `write \`provide ${target.name.name}.OUTPUT = "path"\``,
          start: target.range.start.offset,
          end: target.range.end.offset,
        });
        return undefined;
      }
      return target && path ? { kind: 'Provide', target, path, range: this.from(kw) } : undefined;
    });
  });

  stageDecl = this.RULE(
    'stageDecl',
    (): StageDecl | undefined => {
      const kw = this.CONSUME(T.Stage);
      const name = this.CONSUME(T.Identifier);
      this.ACTION(() => {
        this.context.stageName = isReal(name) ? name.image : undefined;
        this.context.stageBrace = undefined;
        this.openStage = undefined;
      });
      let fanOut: FanOut | undefined;
      this.OPTION(() => {
        fanOut = this.SUBRULE(this.fanOut);
      });
      this.CONSUME(T.Colon);
      const kind = this.CONSUME2(T.Identifier);
      const brace = this.CONSUME(T.LCurly);
      const open: OpenStage = { keyword: kw, name, fanOut, kind, items: [] };
      this.ACTION(() => {
        this.context.stageBrace = brace;
        this.openStage = open;
      });
      this.MANY(() => {
        this.OR([
          {
            ALT: () => {
              const item = this.SUBRULE(this.stageItem);
              this.ACTION(() => {
                if (item) open.items.push(item);
              });
            },
          },
          { ALT: () => this.CONSUME(T.Comma) },
          { ALT: () => this.CONSUME(T.Semicolon) },
        ]);
      });
      this.CONSUME(T.RCurly);
      return this.ACTION(() => {
        this.openStage = undefined;
        return this.stageNode(open);
      });
    },
    { recoveryValueFunc: () => this.recoverStage() },
  );

  private stageNode(open: OpenStage): StageDecl | undefined {
    const name = this.ident(open.name);
    const kind = open.kind && this.ident(open.kind);
    if (!name || !kind) return undefined;
    return {
      kind: 'Stage',
      name,
      ...(open.fanOut ? { fanOut: open.fanOut } : {}),
      stageKind: kind,
      items: open.items,
      range: this.from(open.keyword),
    };
  }

  /** A stage cut short by an error keeps the items parsed so far (the error is reported). */
  private recoverStage(): StageDecl | undefined {
    const open = this.openStage;
    this.openStage = undefined;
    return open ? this.stageNode(open) : undefined;
  }

  fanOut = this.RULE('fanOut', (): FanOut | undefined => {
    const open = this.CONSUME(T.LBracket);
    const variable = this.CONSUME(T.Identifier);
    this.CONSUME(T.In);
    const domain = this.SUBRULE(this.value);
    this.CONSUME(T.RBracket);
    return this.ACTION(() => {
      const v = this.ident(variable);
      return v && domain ? { variable: v, domain, range: this.from(open) } : undefined;
    });
  });

  stageItem = this.RULE('stageItem', (): StageItem | undefined =>
    this.OR([
      { ALT: () => this.SUBRULE(this.assignment) },
      { ALT: () => this.SUBRULE(this.outputDecl) },
      { ALT: () => this.SUBRULE(this.publishDecl) },
    ]),
  );

  assignment = this.RULE('assignment', (): Assignment | undefined => {
    const name = this.CONSUME(T.Identifier);
    const eq = this.CONSUME(T.Equals);
    const value = this.valueAfter(eq);
    return this.ACTION(() => {
      const id = this.ident(name);
      return id && value ? { kind: 'Assign', name: id, value, range: this.from(name) } : undefined;
    });
  });

  outputDecl = this.RULE('outputDecl', (): OutputDecl | undefined => {
    const kw = this.CONSUME(T.Output);
    const name = this.CONSUME(T.Identifier);
    this.CONSUME(T.Colon);
    const type = this.CONSUME2(T.Identifier);
    let path: Expression | undefined;
    let hasEquals = false;
    this.OPTION(() => {
      const eq = this.CONSUME(T.Equals);
      hasEquals = true;
      path = this.valueAfter(eq);
    });
    return this.ACTION(() => {
      const id = this.ident(name);
      const tn = this.typeName(type);
      if (!id || !tn || (hasEquals && !path)) return undefined;
      return { kind: 'Output', name: id, type: tn, ...(path ? { path } : {}), range: this.from(kw) };
    });
  });

  publishDecl = this.RULE('publishDecl', (): PublishDecl | undefined => {
    const kw = this.CONSUME(T.Publish);
    const output = this.CONSUME(T.Identifier);
    this.CONSUME(T.To);
    const path = this.SUBRULE(this.value);
    return this.ACTION(() => {
      const id = this.ident(output);
      return id && path ? { kind: 'Publish', output: id, path, range: this.from(kw) } : undefined;
    });
  });

  // ------------------------------------------------------------------------------------------
  // values

  value = this.RULE('value', (): Expression | undefined => {
    const low = this.SUBRULE(this.primary);
    let high: Expression | undefined;
    let isRange = false;
    this.OPTION(() => {
      this.CONSUME(T.DotDot);
      isRange = true;
      high = this.SUBRULE2(this.primary);
    });
    return this.ACTION(() => {
      if (!isRange) return low;
      if (!low || !high) return undefined;
      return { kind: 'Range', low, high, range: this.span(low.range.start.offset, high.range.end.offset) };
    });
  });

  primary = this.RULE('primary', (): Expression | undefined =>
    this.OR([
      { ALT: () => this.SUBRULE(this.stringLiteral) },
      {
        ALT: () => {
          const t = this.CONSUME(T.NumberToken);
          return this.ACTION(() => {
            if (!isReal(t)) return undefined;
            const raw = t.image;
            return { kind: 'Number' as const, value: Number(raw), raw, isInteger: !/[.eE]/.test(raw), range: this.from(t) };
          });
        },
      },
      {
        ALT: () => {
          const t = this.CONSUME(T.True);
          return this.ACTION(() => (isReal(t) ? { kind: 'Boolean' as const, value: true, range: this.from(t) } : undefined));
        },
      },
      {
        ALT: () => {
          const t = this.CONSUME(T.False);
          return this.ACTION(() => (isReal(t) ? { kind: 'Boolean' as const, value: false, range: this.from(t) } : undefined));
        },
      },
      { ALT: () => this.SUBRULE(this.listLiteral) },
      { ALT: () => this.SUBRULE(this.mapLiteral) },
      { ALT: () => this.SUBRULE(this.reference) },
    ]),
  );

  stringLiteral = this.RULE('stringLiteral', (): StringLiteral | undefined => {
    const t = this.CONSUME(T.StringLit);
    return this.ACTION(() => this.stringNode(t));
  });

  listLiteral = this.RULE('listLiteral', (): ListLiteral | undefined => {
    const open = this.CONSUME(T.LBracket);
    const items: Expression[] = [];
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            const v = this.SUBRULE(this.value);
            this.ACTION(() => {
              if (v) items.push(v);
            });
          },
        },
        { ALT: () => this.CONSUME(T.Comma) },
        { ALT: () => this.CONSUME(T.Semicolon) },
      ]);
    });
    this.CONSUME(T.RBracket);
    return this.ACTION(() => (isReal(open) ? { kind: 'List', items, range: this.from(open) } : undefined));
  });

  mapLiteral = this.RULE('mapLiteral', (): MapLiteral | undefined => {
    const open = this.CONSUME(T.LCurly);
    const entries: MapEntry[] = [];
    this.MANY(() => {
      this.OR([
        {
          ALT: () => {
            const e = this.SUBRULE(this.mapEntry);
            this.ACTION(() => {
              if (e) entries.push(e);
            });
          },
        },
        { ALT: () => this.CONSUME(T.Comma) },
        { ALT: () => this.CONSUME(T.Semicolon) },
      ]);
    });
    this.CONSUME(T.RCurly);
    return this.ACTION(() => (isReal(open) ? { kind: 'Map', entries, range: this.from(open) } : undefined));
  });

  mapEntry = this.RULE('mapEntry', (): MapEntry | undefined => {
    const key = this.OR([
      { ALT: () => this.identOrKeyword(this.CONSUME(T.Identifier)) },
      { ALT: () => this.identOrKeyword(this.CONSUME(T.Keyword)) },
      { ALT: () => this.SUBRULE(this.stringLiteral) },
    ]);
    const colon = this.CONSUME(T.Colon);
    const value = this.valueAfter(colon);
    return this.ACTION(() => (key && value ? { key, value, range: this.span(key.range.start.offset, value.range.end.offset) } : undefined));
  });

  private identOrKeyword(t: IToken): Identifier | undefined {
    return this.ACTION(() => this.ident(t));
  }

  reference = this.RULE('reference', (): NameRef | OutputRef | undefined => {
    const stage = this.CONSUME(T.Identifier);
    let index: OutputRef['index'];
    let hasIndex = false;
    let output: IToken | undefined;
    this.OPTION({
      // `ode[2]` only when `[` touches the name (see the layout rules at the top).
      GATE: () => isReal(stage) && this.LA(1).startOffset === tokenEnd(stage),
      DEF: () => {
        this.CONSUME(T.LBracket);
        hasIndex = true;
        index = this.OR([
          {
            ALT: () => {
              const star = this.CONSUME(T.Star);
              return this.ACTION(() => ({ kind: 'All' as const, range: this.from(star) }));
            },
          },
          { ALT: () => this.SUBRULE(this.value) },
        ]);
        this.CONSUME(T.RBracket);
      },
    });
    let hasDot = false;
    this.OPTION2(() => {
      const dot = this.CONSUME(T.Dot);
      hasDot = true;
      let named = false;
      this.OPTION3({
        GATE: () => !this.nextStartsItem(dot),
        DEF: () => {
          named = true;
          output = this.CONSUME2(T.Identifier);
        },
      });
      this.ACTION(() => {
        if (!named && isReal(dot)) {
          this.problems.push(expectedAfter(this.context, 'expected-token', 'an output name', dot, this.LA(1)));
        }
      });
    });
    return this.ACTION(() => {
      const stageId = this.ident(stage);
      if (!stageId || (hasDot && output === undefined)) return undefined;
      if (output !== undefined) {
        const out = this.ident(output);
        if (!out || (hasIndex && !index)) return undefined;
        return { kind: 'OutputRef', stage: stageId, ...(index ? { index } : {}), output: out, range: this.from(stage) };
      }
      if (hasIndex) {
        const range = this.from(stage);
        this.problems.push({
          code: 'expected-output',
          message: `expected \`.\` and an output name after \`${this.lines.source.slice(range.start.offset, range.end.offset)}\``,
          help: `a fan-out member is used as \`${stage.image}[i].OUTPUT\`, all members as \`${stage.image}[*].OUTPUT\``,
          start: range.end.offset,
          end: range.end.offset,
        });
        return undefined;
      }
      return { kind: 'Name', name: stageId, range: stageId.range };
    });
  });

  /** Entry point for the expression inside `${...}`. */
  hole = this.RULE('hole', (): Expression | undefined => this.SUBRULE(this.value));
}

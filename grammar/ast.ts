// The syntax tree of a .cf pipeline file. Every node carries the source range it was parsed
// from, so any later stage (compile, config checks, the formatter) can point back at the text.

/** A position in a source file: 1-based line and column, 0-based offset. */
export interface Position {
  readonly line: number;
  readonly column: number;
  readonly offset: number;
}

/** A half-open span [start, end) of one file. */
export interface SourceRange {
  readonly file: string;
  readonly start: Position;
  readonly end: Position;
}

interface NodeBase {
  readonly range: SourceRange;
}

/** An identifier with its own range (names are what diagnostics point at most often). */
export interface Identifier extends NodeBase {
  readonly kind: 'Identifier';
  readonly name: string;
}

// ---------------------------------------------------------------------------------------------
// Expressions (values)

export interface StringLiteral extends NodeBase {
  readonly kind: 'String';
  /** Literal text and `${expr}` holes, in order. A string without holes has one text part. */
  readonly parts: readonly StringPart[];
}
export type StringPart =
  | { readonly kind: 'Text'; readonly text: string; readonly range: SourceRange }
  | { readonly kind: 'Interpolation'; readonly expr: Expression; readonly range: SourceRange };

export interface NumberLiteral extends NodeBase {
  readonly kind: 'Number';
  readonly value: number;
  /** The spelling in the source (kept so the formatter can print `2e-6` as written). */
  readonly raw: string;
  readonly isInteger: boolean;
}

export interface BooleanLiteral extends NodeBase {
  readonly kind: 'Boolean';
  readonly value: boolean;
}

export interface ListLiteral extends NodeBase {
  readonly kind: 'List';
  readonly items: readonly Expression[];
}

export interface MapEntry extends NodeBase {
  readonly key: Identifier | StringLiteral;
  readonly value: Expression;
}
export interface MapLiteral extends NodeBase {
  readonly kind: 'Map';
  readonly entries: readonly MapEntry[];
}

/** `lo..hi` (hi exclusive), only as a fan-out domain or a list value. */
export interface RangeLiteral extends NodeBase {
  readonly kind: 'Range';
  readonly low: Expression;
  readonly high: Expression;
}

/** A bare name: a param or a fan-out variable. */
export interface NameRef extends NodeBase {
  readonly kind: 'Name';
  readonly name: Identifier;
}

/**
 * `stage.output`, `stage[2].output` or `stage[*].output` (fan-in): an edge of the graph.
 * `index` is absent for a plain stage, an expression for one member, '*' for all members.
 */
export interface OutputRef extends NodeBase {
  readonly kind: 'OutputRef';
  readonly stage: Identifier;
  readonly index?: Expression | { readonly kind: 'All'; readonly range: SourceRange };
  readonly output: Identifier;
}

export type Expression =
  | StringLiteral
  | NumberLiteral
  | BooleanLiteral
  | ListLiteral
  | MapLiteral
  | RangeLiteral
  | NameRef
  | OutputRef;

// ---------------------------------------------------------------------------------------------
// Statements

export type ParamType = 'string' | 'int' | 'float' | 'bool' | 'list' | 'map' | 'path';

export interface TypeName extends NodeBase {
  readonly kind: 'TypeName';
  readonly name: string;
}

/** `param name: type = default` (the default is optional: a param without one must be --set). */
export interface ParamDecl extends NodeBase {
  readonly kind: 'Param';
  readonly name: Identifier;
  readonly type: TypeName;
  readonly default?: Expression;
  readonly doc?: string;
}

export interface IncludeDecl extends NodeBase {
  readonly kind: 'Include';
  readonly path: StringLiteral;
}

export interface PipelineDecl extends NodeBase {
  readonly kind: 'Pipeline';
  readonly name: StringLiteral;
}

/** `default a, b`: the targets a plain `cfpipe run FILE` builds (all stages when absent). */
export interface DefaultDecl extends NodeBase {
  readonly kind: 'Default';
  readonly targets: readonly Identifier[];
}

/** `provide stage.output = "path"`: use an existing artifact instead of computing it. */
export interface ProvideDecl extends NodeBase {
  readonly kind: 'Provide';
  readonly target: OutputRef;
  readonly path: Expression;
}

/** `[var in domain]` after a stage name: one task per element of the domain. */
export interface FanOut extends NodeBase {
  readonly variable: Identifier;
  readonly domain: Expression;
}

/** `name = value` inside a stage: an input, a stage parameter, a resource or a setting. */
export interface Assignment extends NodeBase {
  readonly kind: 'Assign';
  readonly name: Identifier;
  readonly value: Expression;
}

/** `output name: type` (exec stages and fetch declare their outputs), optionally `= "path"`. */
export interface OutputDecl extends NodeBase {
  readonly kind: 'Output';
  readonly name: Identifier;
  readonly type: TypeName;
  readonly path?: Expression;
}

/** `publish output to "path"`: copy a finished output to a user-visible place. */
export interface PublishDecl extends NodeBase {
  readonly kind: 'Publish';
  readonly output: Identifier;
  readonly path: Expression;
}

export type StageItem = Assignment | OutputDecl | PublishDecl;

export interface StageDecl extends NodeBase {
  readonly kind: 'Stage';
  readonly name: Identifier;
  readonly fanOut?: FanOut;
  readonly stageKind: Identifier;
  readonly items: readonly StageItem[];
}

export type Statement = PipelineDecl | IncludeDecl | ParamDecl | DefaultDecl | ProvideDecl | StageDecl;

/** A comment, kept so the formatter can put it back. */
export interface Comment extends NodeBase {
  readonly text: string;
}

export interface PipelineFile {
  readonly path: string;
  readonly source: string;
  readonly statements: readonly Statement[];
  readonly comments: readonly Comment[];
}

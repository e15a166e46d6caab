// `cfpipe fmt`: one canonical layout for a .cf file that parsed without errors.
// 2-space indent; one item per line in stage bodies; `key = value` not aligned (diffs stay
// small when a key is added); lists and maps inline when they fit in 100 columns and hold no
// comments, otherwise one element per line with a trailing comma; at most one blank line
// kept wherever the source had one. Every comment is kept: own-line comments before the thing
// that follows them, trailing comments at the end of the same line. Idempotent by construction:
// every decision depends only on the tree, the comments and the blank lines, which the output
// reproduces.

import type { Comment, Expression, MapEntry, PipelineFile, StageDecl, StageItem, Statement, StringLiteral } from './ast.js';
import type { Diagnostic } from './diagnostic.js';
import { hasErrors } from './diagnostic.js';
import { parsePipeline } from './parse.js';
import { escapeStringText } from './strings.js';

const maxWidth = 100;
const indentUnit = '  ';

/** Format a parsed file. The file must have parsed without errors (see formatSource). */
export function formatPipeline(file: PipelineFile): string {
  return new Printer(file).print();
}

/** Parse and format; no text when the file has errors (they are returned instead). */
export function formatSource(path: string, source: string): { text?: string; diagnostics: Diagnostic[] } {
  const { file, diagnostics } = parsePipeline(path, source);
  if (hasErrors(diagnostics)) return { diagnostics };
  return { text: formatPipeline(file), diagnostics };
}

/** A value printed on one line, comments ignored (callers check there are none inside). */
export function inlineValue(e: Expression): string {
  switch (e.kind) {
    case 'String':
      return stringText(e);
    case 'Number':
      return e.raw;
    case 'Boolean':
      return e.value ? 'true' : 'false';
    case 'Name':
      return e.name.name;
    case 'OutputRef': {
      const index = e.index === undefined ? '' : `[${e.index.kind === 'All' ? '*' : inlineValue(e.index)}]`;
      return `${e.stage.name}${index}.${e.output.name}`;
    }
    case 'Range':
      return `${inlineValue(e.low)}..${inlineValue(e.high)}`;
    case 'List':
      return `[${e.items.map(inlineValue).join(', ')}]`;
    case 'Map':
      return e.entries.length === 0 ? '{}' : `{ ${e.entries.map((x) => `${keyText(x)}: ${inlineValue(x.value)}`).join(', ')} }`;
  }
}

function stringText(s: StringLiteral): string {
  return `"${s.parts.map((p) => (p.kind === 'Text' ? escapeStringText(p.text) : `\${${inlineValue(p.expr)}}`)).join('')}"`;
}

const keyText = (e: MapEntry): string => (e.key.kind === 'Identifier' ? e.key.name : stringText(e.key));

class Printer {
  private readonly out: string[] = [];
  private readonly comments: readonly Comment[];
  private next = 0;
  /** True right after a block opened (or at the top): no blank line goes there. */
  private fresh = true;

  constructor(private readonly file: PipelineFile) {
    this.comments = [...file.comments].sort((a, b) => a.range.start.offset - b.range.start.offset);
  }

  print(): string {
    for (const s of this.file.statements) {
      this.startLine(s.range.start.offset, '');
      if (s.kind === 'Stage') this.stage(s);
      else {
        this.hoist(blockStart(s) ?? s.range.end.offset, '');
        this.statement(s);
      }
      this.trailing(s.range.end.offset);
    }
    this.leading(this.file.source.length + 1, '');
    while (this.out.length > 0 && this.out.at(-1) === '') this.out.pop();
    return this.out.length === 0 ? '' : `${this.out.join('\n')}\n`;
  }

  // -- layout helpers -------------------------------------------------------------------------

  private push(line: string): void {
    this.out.push(line);
    this.fresh = false;
  }

  /** Whether the source has an empty line right before `offset` (only blanks and separators between). */
  private blankBefore(offset: number): boolean {
    const src = this.file.source;
    let newlines = 0;
    for (let i = offset - 1; i >= 0; i--) {
      const c = src[i];
      if (c === '\n') newlines += 1;
      else if (c !== ' ' && c !== '\t' && c !== '\r' && c !== ',' && c !== ';') break;
    }
    return newlines >= 2;
  }

  private separate(offset: number): void {
    if (!this.fresh && this.blankBefore(offset) && this.out.at(-1) !== '') this.out.push('');
  }

  /** Own-line comments before `offset`, each on its own line at `indent`. */
  private leading(offset: number, indent: string): void {
    for (let c = this.comments[this.next]; c && c.range.start.offset < offset; c = this.comments[++this.next]) {
      this.separate(c.range.start.offset);
      this.push(`${indent}${c.text}`);
    }
  }

  /** Comments, then a blank line if the source had one, before a thing starting at `offset`. */
  private startLine(offset: number, indent: string): void {
    this.leading(offset, indent);
    this.separate(offset);
  }

  /**
   * Comments inside a thing printed on one line (`param # c` + newline + `x: int`) move above
   * it, followed by an empty line so they do not become the doc of a param.
   */
  private hoist(until: number, indent: string): void {
    const before = this.out.length;
    this.leading(until, indent);
    if (this.out.length > before) this.out.push('');
  }

  /** A comment on the same source line right after `end` (only `,`/`;` between) joins the last line. */
  private trailingText(end: number): string {
    const c = this.comments[this.next];
    if (!c || c.range.start.offset < end) return '';
    const between = this.file.source.slice(end, c.range.start.offset);
    if (!/^[ \t,;]*$/.test(between)) return '';
    this.next += 1;
    return ` ${c.text}`;
  }

  private trailing(end: number): void {
    const text = this.trailingText(end);
    if (text !== '' && this.out.length > 0) this.out[this.out.length - 1] += text;
  }

  private hasCommentInside(start: number, end: number): boolean {
    const c = this.comments[this.next];
    return c !== undefined && c.range.start.offset > start && c.range.start.offset < end;
  }

  /** Push text that may span several lines (a multi-line value). */
  private pushText(text: string): void {
    for (const line of text.split('\n')) this.push(line);
  }

  // -- statements ----------------------------------------------------------------------------

  private statement(s: Statement): void {
    switch (s.kind) {
      case 'Pipeline':
        return this.pushText(`pipeline ${stringText(s.name)}`);
      case 'Include':
        return this.pushText(`include ${stringText(s.path)}`);
      case 'Param': {
        const head = `param ${s.name.name}: ${s.type.name}`;
        return this.pushText(s.default ? `${head} = ${this.value(s.default, '', head.length + 3)}` : head);
      }
      case 'Default':
        return this.pushText(`default ${s.targets.map((t) => t.name).join(', ')}`);
      case 'Provide': {
        const head = `provide ${inlineValue(s.target)}`;
        return this.pushText(`${head} = ${this.value(s.path, '', head.length + 3)}`);
      }
      case 'Stage':
        return this.stage(s);
    }
  }

  private stage(s: StageDecl): void {
    const fan = s.fanOut ? `[${s.fanOut.variable.name} in ${inlineValue(s.fanOut.domain)}]` : '';
    const head = `stage ${s.name.name}${fan}: ${s.stageKind.name} {`;
    const close = s.range.end.offset - 1;
    const brace = this.openingBrace(s);
    this.hoist(brace, '');
    if (s.items.length === 0 && !this.hasCommentInside(s.range.start.offset, close)) {
      this.push(`${head}}`);
      return;
    }
    this.push(head);
    this.fresh = true;
    this.trailing(brace + 1);
    for (const item of s.items) {
      this.startLine(item.range.start.offset, indentUnit);
      this.hoist(itemBlockStart(item) ?? item.range.end.offset, indentUnit);
      this.pushText(`${indentUnit}${this.item(item)}`);
      this.trailing(item.range.end.offset);
    }
    this.leading(close, indentUnit);
    this.push('}');
  }

  /** The offset of a stage's `{` (after its kind, skipping blanks and comments). */
  private openingBrace(s: StageDecl): number {
    const src = this.file.source;
    for (let i = s.stageKind.range.end.offset; i < src.length; i++) {
      const c = src[i];
      if (c === '{') return i;
      if (c === '#') i = src.indexOf('\n', i) < 0 ? src.length : src.indexOf('\n', i);
    }
    return s.stageKind.range.end.offset;
  }

  private item(item: StageItem): string {
    const inner = indentUnit;
    switch (item.kind) {
      case 'Assign': {
        const head = `${item.name.name} = `;
        return `${head}${this.value(item.value, inner, inner.length + head.length)}`;
      }
      case 'Output': {
        const head = `output ${item.name.name}: ${item.type.name}`;
        return item.path ? `${head} = ${this.value(item.path, inner, inner.length + head.length + 3)}` : head;
      }
      case 'Publish': {
        const head = `publish ${item.output.name} to `;
        return `${head}${this.value(item.path, inner, inner.length + head.length)}`;
      }
    }
  }

  // -- values --------------------------------------------------------------------------------

  /**
   * A value that starts at column `column` of a line indented by `indent`. Lists and maps go
   * multi-line when they hold a comment or do not fit; their closing bracket lines up with `indent`.
   */
  private value(e: Expression, indent: string, column: number): string {
    if (e.kind !== 'List' && e.kind !== 'Map') return inlineValue(e);
    const inline = inlineValue(e);
    const open = e.range.start.offset;
    const close = e.range.end.offset - 1;
    if (!this.hasCommentInside(open, close) && column + inline.length <= maxWidth) return inline;
    const inner = indent + indentUnit;
    const lines: string[] = [e.kind === 'List' ? '[' : '{'];
    const saved = this.out.length;
    const elements: { start: number; end: number; block: number | undefined; text: () => string }[] =
      e.kind === 'List'
        ? e.items.map((v) => ({
            start: v.range.start.offset,
            end: v.range.end.offset,
            block: firstBlock(v),
            text: () => this.value(v, inner, inner.length),
          }))
        : e.entries.map((x) => {
            const head = `${keyText(x)}: `;
            return {
              start: x.range.start.offset,
              end: x.range.end.offset,
              block: firstBlock(x.value),
              text: () => `${head}${this.value(x.value, inner, inner.length + head.length)}`,
            };
          });
    // Elements are printed into `out` (to share the comment logic), then moved into `lines`.
    this.fresh = true;
    const trailingOpen = this.trailingText(open + 1);
    lines[0] += trailingOpen;
    for (const el of elements) {
      this.startLine(el.start, inner);
      this.hoist(el.block ?? el.end, inner);
      this.pushText(`${inner}${el.text()},`);
      this.trailing(el.end);
    }
    this.leading(close, inner);
    lines.push(...this.out.splice(saved));
    lines.push(`${indent}${e.kind === 'List' ? ']' : '}'}`);
    this.fresh = false;
    return lines.join('\n');
  }
}

/** Where the first list or map of a value starts (it prints its own comments), if any. */
function firstBlock(e: Expression): number | undefined {
  switch (e.kind) {
    case 'List':
    case 'Map':
      return e.range.start.offset;
    case 'Range':
      return firstBlock(e.low) ?? firstBlock(e.high);
    case 'OutputRef':
      return e.index && e.index.kind !== 'All' ? firstBlock(e.index) : undefined;
    default:
      return undefined;
  }
}

function blockStart(s: Exclude<Statement, StageDecl>): number | undefined {
  switch (s.kind) {
    case 'Param':
      return s.default && firstBlock(s.default);
    case 'Provide':
      return firstBlock(s.path);
    default:
      return undefined;
  }
}

function itemBlockStart(item: StageItem): number | undefined {
  switch (item.kind) {
    case 'Assign':
      return firstBlock(item.value);
    case 'Output':
      return item.path && firstBlock(item.path);
    case 'Publish':
      return firstBlock(item.path);
  }
}

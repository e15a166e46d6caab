// Checks that need only one file's syntax tree: names declared twice, param types that do not
// exist, keys given twice in a stage body or a map. (Names across files, references, cycles and
// types of values are the compiler's.)

import type { Expression, Identifier, PipelineFile, SourceRange, StringLiteral } from './ast.js';
import type { Diagnostic } from './diagnostic.js';
import { suggest } from './suggest.js';

export const paramTypes: readonly string[] = ['string', 'int', 'float', 'bool', 'list', 'map', 'path'];

export function checkSyntax(file: PipelineFile): Diagnostic[] {
  const out: Diagnostic[] = [];
  const params = new Map<string, Identifier>();
  const stages = new Map<string, Identifier>();
  let pipeline: SourceRange | undefined;

  const twice = (code: string, what: string, first: SourceRange, again: SourceRange): void => {
    out.push({
      severity: 'error',
      code,
      message: `${what} is declared twice`,
      range: again,
      related: [{ message: 'first declared here', range: first }],
    });
  };

  for (const s of file.statements) {
    switch (s.kind) {
      case 'Pipeline':
        if (pipeline) twice('duplicate-pipeline', 'the pipeline name', pipeline, s.range);
        else pipeline = s.range;
        break;
      case 'Param': {
        const first = params.get(s.name.name);
        if (first) twice('duplicate-param', `param \`${s.name.name}\``, first.range, s.name.range);
        else params.set(s.name.name, s.name);
        if (!paramTypes.includes(s.type.name)) {
          const near = suggest(s.type.name, paramTypes);
          out.push({
            severity: 'error',
            code: 'unknown-type',
            message: `unknown type \`${s.type.name}\` for param \`${s.name.name}\``,
            range: s.type.range,
            help: near !== undefined ? `did you mean \`${near}\`?` : `the types are ${paramTypes.join(', ')}`,
          });
        }
        if (s.default) checkValue(s.default, out);
        break;
      }
      case 'Provide':
        checkValue(s.path, out);
        break;
      case 'Stage': {
        const first = stages.get(s.name.name);
        if (first) twice('duplicate-stage', `stage \`${s.name.name}\``, first.range, s.name.range);
        else stages.set(s.name.name, s.name);
        const inputs = new Map<string, Identifier>();
        const outputs = new Map<string, Identifier>();
        if (s.fanOut) checkValue(s.fanOut.domain, out);
        for (const item of s.items) {
          if (item.kind === 'Assign') {
            const prev = inputs.get(item.name.name);
            if (prev) {
              out.push({
                severity: 'error',
                code: 'duplicate-key',
                message: `\`${item.name.name}\` is set twice in stage \`${s.name.name}\``,
                range: item.name.range,
                related: [{ message: 'first set here', range: prev.range }],
              });
            } else inputs.set(item.name.name, item.name);
            checkValue(item.value, out);
          } else if (item.kind === 'Output') {
            const prev = outputs.get(item.name.name);
            if (prev) twice('duplicate-output', `output \`${item.name.name}\` of stage \`${s.name.name}\``, prev.range, item.name.range);
            else outputs.set(item.name.name, item.name);
            if (item.path) checkValue(item.path, out);
          } else {
            checkValue(item.path, out);
          }
        }
        break;
      }
      default:
        break;
    }
  }
  return out;
}

/** The literal text of a map key (a string with `${}` holes has none). */
function keyText(key: Identifier | StringLiteral): string | undefined {
  if (key.kind === 'Identifier') return key.name;
  const [only, ...rest] = key.parts;
  return only && only.kind === 'Text' && rest.length === 0 ? only.text : undefined;
}

/** Duplicate keys in maps, at any depth of a value. */
function checkValue(value: Expression, out: Diagnostic[]): void {
  switch (value.kind) {
    case 'Map': {
      const seen = new Map<string, SourceRange>();
      for (const e of value.entries) {
        const k = keyText(e.key);
        if (k !== undefined) {
          const prev = seen.get(k);
          if (prev) {
            out.push({
              severity: 'error',
              code: 'duplicate-key',
              message: `key \`${k}\` appears twice in this map`,
              range: e.key.range,
              related: [{ message: 'first given here', range: prev }],
            });
          } else seen.set(k, e.key.range);
        }
        checkValue(e.value, out);
      }
      break;
    }
    case 'List':
      for (const v of value.items) checkValue(v, out);
      break;
    case 'Range':
      checkValue(value.low, out);
      checkValue(value.high, out);
      break;
    case 'String':
      for (const p of value.parts) if (p.kind === 'Interpolation') checkValue(p.expr, out);
      break;
    case 'OutputRef':
      if (value.index && value.index.kind !== 'All') checkValue(value.index, out);
      break;
    default:
      break;
  }
}

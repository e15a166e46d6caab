// Stage declarations → task drafts: fan-out expanded, every property sorted into inputs,
// params, resources and config, each checked against the stage kind's registry entry.
// Edges are recorded with the range of the reference that made them (cycles point there).

import { statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import type { Assignment, Expression, OutputRef, SourceRange, StageDecl } from '../../grammar/ast.js';
import type { ArtifactType, InputSource, Value } from '../graph.js';
import { getKind, kindNames, RESOURCE_PROPERTIES, CONFIG_PROPERTIES } from '../registry/index.js';
import type { ParamSpec, StageKindSpec } from '../registry/types.js';
import type { Located } from '../config/located.js';
import { typeMismatch } from '../config/types.js';
import { didYouMean, type Diagnostics } from './diagnostics.js';
import { evaluate, evaluateLocated, type Scope } from './evaluate.js';
import { parseMemory } from './resources.js';

const ARTIFACT_TYPES: readonly ArtifactType[] = ['dataset', 'checkpoint', 'trajectories', 'videos', 'metrics', 'file', 'dir'];

export interface StageInfo {
  readonly decl: StageDecl;
  readonly spec?: StageKindSpec;
  /** Fan-out members' bound values; undefined for a plain stage. */
  readonly members?: readonly Value[];
  readonly outputs: Map<string, { type: ArtifactType; path?: string }>;
  /** Unknown kind or failed fan-out: references to it are not reported again. */
  readonly broken: boolean;
}

export interface InputDraft {
  readonly name: string;
  readonly type: ArtifactType;
  readonly sources: InputSource[];
  readonly fanIn: boolean;
  readonly range: SourceRange;
  /** For each source: the reference text's range and, for a task source, its output's type. */
  readonly refs: { readonly range: SourceRange; readonly label: string; readonly type?: ArtifactType }[];
}

export interface TaskDraft {
  readonly id: string;
  readonly stage: StageInfo;
  readonly memberIndex?: number;
  readonly params: { [name: string]: Value };
  readonly paramRanges: Map<string, SourceRange>;
  readonly inputs: InputDraft[];
  readonly edges: { readonly to: string; readonly range: SourceRange }[];
  readonly resources: { cpus: number; gpus: number; memory: number; device?: string };
  readonly gpusRange?: SourceRange;
  retries: number;
  config?: { readonly path: string; readonly range: SourceRange; readonly overrides?: Located };
  readonly publishes: { readonly output: string; readonly path: string; readonly range: SourceRange }[];
}

export interface StageContext {
  readonly root: string;
  readonly params: Scope;
  readonly stages: ReadonlyMap<string, StageInfo>;
  /** `stage#member#output` → provided path. */
  readonly provided: ReadonlyMap<string, string>;
  readonly diagnostics: Diagnostics;
}

export const memberId = (stage: string, index: number | undefined): string =>
  index === undefined ? stage : `${stage}[${index}]`;
export const provideKey = (stage: string, index: number | undefined, output: string): string =>
  `${stage}#${index ?? -1}#${output}`;

/** How an artifact type reads in a sentence: "a dataset", "trajectories", "a directory". */
export const artifactPhrase = (type: string): string =>
  ({ trajectories: 'trajectories', videos: 'videos', metrics: 'metrics', dir: 'a directory', checkpoint: 'a checkpoint', dataset: 'a dataset', file: 'a file' })[type] ?? `a ${type}`;
const article = artifactPhrase;
const typesText = (types: readonly string[]): string => types.map(article).join(' or ');

/** A reference as written, for messages: `ode[*].trajectories`, `ode[i].x`, `base.model`. */
export function referenceText(ref: OutputRef): string {
  const index = ref.index;
  const inner =
    index === undefined ? '' : index.kind === 'All' ? '[*]' : index.kind === 'Number' ? `[${index.raw}]` : index.kind === 'Name' ? `[${index.name.name}]` : '[…]';
  return `${ref.stage.name}${inner}.${ref.output.name}`;
}

/** Read a stage's head: kind, fan-out domain, outputs. */
export function stageInfo(decl: StageDecl, params: Scope, diagnostics: Diagnostics): StageInfo {
  const spec = getKind(decl.stageKind.name);
  const outputs = new Map<string, { type: ArtifactType; path?: string }>();
  let broken = false;
  if (!spec) {
    broken = true;
    diagnostics.error('unknown-kind', `unknown stage kind \`${decl.stageKind.name}\``, decl.stageKind.range, {
      ...didYouMean(decl.stageKind.name, kindNames()),
      ...(suggestionless(decl.stageKind.name) ? { help: `the kinds are ${kindNames().join(', ')}` } : {}),
    });
  } else {
    for (const [name, out] of Object.entries(spec.outputs)) outputs.set(name, { type: out.type });
    const declared = decl.items.filter((i) => i.kind === 'Output');
    if (!spec.declaredOutputs && declared.length > 0) {
      for (const item of declared) {
        diagnostics.error('output-not-declarable', `a \`${spec.name}\` stage has fixed outputs (${Object.keys(spec.outputs).join(', ') || 'none'}); it cannot declare \`${item.name.name}\``, item.range);
      }
    }
    if (spec.declaredOutputs) {
      for (const item of declared) {
        const type = item.type.name as ArtifactType;
        if (!ARTIFACT_TYPES.includes(type)) {
          diagnostics.error('unknown-artifact-type', `unknown artifact type \`${item.type.name}\``, item.type.range, {
            ...didYouMean(item.type.name, ARTIFACT_TYPES),
          });
          outputs.set(item.name.name, { type: 'file' });
          continue;
        }
        let path: string | undefined;
        if (item.path) {
          const value = evaluate(item.path, params, diagnostics);
          if (typeof value === 'string') path = value;
          else if (value !== undefined) diagnostics.error('output-path-type', 'an output path must be a string', item.path.range);
        }
        outputs.set(item.name.name, path === undefined ? { type } : { type, path });
      }
      const { min, max } = spec.declaredOutputs;
      if (declared.length < min || declared.length > max) {
        diagnostics.error(
          'output-count',
          min === max
            ? `a \`${spec.name}\` stage declares exactly ${min} output${min === 1 ? '' : 's'} (\`output name: type\`), this one ${declared.length}`
            : `a \`${spec.name}\` stage declares at least ${min} output(s), this one ${declared.length}`,
          decl.name.range,
        );
      }
    }
  }
  let members: Value[] | undefined;
  if (decl.fanOut) {
    const domain = evaluate(decl.fanOut.domain, params, diagnostics);
    if (domain === undefined) broken = true;
    else if (!Array.isArray(domain)) {
      diagnostics.error('fan-out-domain', 'a fan-out runs over a range (`0..4`) or a list', decl.fanOut.domain.range);
      broken = true;
    } else if (domain.length === 0) {
      diagnostics.error('fan-out-empty', `the fan-out of \`${decl.name.name}\` has no members`, decl.fanOut.domain.range);
      broken = true;
    } else members = domain as Value[];
  }
  return { decl, ...(spec ? { spec } : {}), ...(members ? { members } : {}), outputs, broken };
}

const suggestionless = (name: string): boolean => didYouMean(name, kindNames()).help === undefined;

/** One task draft per member of the stage (one for a plain stage). */
export function stageDrafts(info: StageInfo, ctx: StageContext): TaskDraft[] {
  const spec = info.spec;
  if (!spec || (info.decl.fanOut && !info.members)) return [];
  const members = info.members ?? [undefined];
  return members.map((value, i) => memberDraft(info, spec, info.members ? i : undefined, value, ctx));
}

function memberDraft(info: StageInfo, spec: StageKindSpec, index: number | undefined, bound: Value | undefined, ctx: StageContext): TaskDraft {
  const { diagnostics } = ctx;
  const decl = info.decl;
  const variable = decl.fanOut?.variable.name;
  const scope: Scope =
    variable === undefined || bound === undefined
      ? ctx.params
      : {
          lookup: (name) => (name === variable ? bound : ctx.params.lookup(name)),
          declared: (name) => name === variable || ctx.params.declared(name),
          names: () => [variable, ...ctx.params.names()],
        };
  const draft: TaskDraft = {
    id: memberId(decl.name.name, index),
    stage: info,
    ...(index !== undefined ? { memberIndex: index } : {}),
    params: {},
    paramRanges: new Map(),
    inputs: [],
    edges: [],
    resources: { cpus: 1, gpus: 0, memory: 0 },
    retries: 0,
    publishes: [],
  };

  const allowed = (): string[] => [
    ...Object.keys(spec.inputs),
    ...Object.keys(spec.params),
    ...Object.keys(RESOURCE_PROPERTIES),
    ...(spec.config ? CONFIG_PROPERTIES : []),
  ];

  for (const item of decl.items) {
    if (item.kind === 'Output') continue;
    if (item.kind === 'Publish') {
      publish(item.output.name, item.path, item.output.range, info, draft, scope, diagnostics);
      continue;
    }
    const name = item.name.name;
    if (spec.config && (name === 'config' || name === 'overrides')) {
      configProperty(item, draft, scope, diagnostics);
    } else if (Object.hasOwn(spec.inputs, name)) {
      const input = spec.inputs[name]!;
      const resolved = resolveInput(name, item.value, input.types, input.many, scope, ctx);
      if (resolved) {
        draft.inputs.push(resolved);
        for (const source of resolved.sources) if (source.kind === 'task') draft.edges.push({ to: source.task, range: item.value.range });
      }
    } else if (Object.hasOwn(spec.params, name)) {
      const value = checkedValue(name, item.value, spec.params[name]!, scope, diagnostics);
      if (value !== undefined) {
        draft.params[name] = value;
        draft.paramRanges.set(name, item.value.range);
      }
    } else if (Object.hasOwn(RESOURCE_PROPERTIES, name)) {
      resource(name, item, draft, scope, diagnostics);
    } else if (spec.openInputs && holdsReference(item.value)) {
      const resolved = resolveInput(name, item.value, ARTIFACT_TYPES, true, scope, ctx);
      if (resolved) {
        draft.inputs.push(resolved);
        for (const source of resolved.sources) if (source.kind === 'task') draft.edges.push({ to: source.task, range: item.value.range });
      }
    } else {
      const help = didYouMean(name, allowed()).help ?? `a \`${spec.name}\` stage takes ${allowed().map((a) => `\`${a}\``).join(', ')}`;
      diagnostics.error('unknown-property', `a \`${spec.name}\` stage has no property \`${name}\``, item.name.range, { help });
    }
  }

  // Required inputs and params; defaults for the rest.
  for (const [name, input] of Object.entries(spec.inputs)) {
    if (input.required && !decl.items.some((i) => i.kind === 'Assign' && i.name.name === name)) {
      diagnostics.error('missing-input', `stage \`${decl.name.name}\` (${spec.name}) needs the input \`${name}\`: ${input.doc}`, decl.name.range, {
        help: `add \`${name} = <stage>.<output>\` (${typesText(input.types)})`,
      });
    }
  }
  for (const [name, param] of Object.entries(spec.params)) {
    if (Object.hasOwn(draft.params, name)) continue;
    if (param.required) {
      if (!decl.items.some((i) => i.kind === 'Assign' && i.name.name === name)) {
        diagnostics.error('missing-param', `stage \`${decl.name.name}\` (${spec.name}) needs \`${name}\`: ${param.doc}`, decl.name.range);
      }
    } else if (param.default !== undefined) draft.params[name] = param.default;
  }
  if (spec.name === 'exec' && draft.params['command'] !== undefined) {
    const command = draft.params['command'];
    const ok = typeof command === 'string' ? command.trim() !== '' : Array.isArray(command) && command.length > 0 && command.every((c) => typeof c === 'string');
    if (!ok) diagnostics.error('exec-command', '`command` must be a non-empty string or a list of strings', draft.paramRanges.get('command'));
  }
  if (spec.config && !draft.config && spec.config.required) {
    diagnostics.error('missing-config-property', `stage \`${decl.name.name}\` (${spec.name}) needs \`config = "configs/....yaml"\``, decl.name.range);
  }
  return draft;
}

function holdsReference(expr: Expression): boolean {
  return expr.kind === 'OutputRef' || (expr.kind === 'List' && expr.items.some(holdsReference));
}

function configProperty(item: Assignment, draft: TaskDraft, scope: Scope, diagnostics: Diagnostics): void {
  if (item.name.name === 'config') {
    const value = evaluate(item.value, scope, diagnostics);
    if (value === undefined) return;
    if (typeof value !== 'string') {
      diagnostics.error('config-path-type', '`config` must be a path to a YAML file', item.value.range);
      return;
    }
    draft.config = { ...draft.config, path: value, range: item.value.range };
    return;
  }
  if (item.value.kind !== 'Map') {
    diagnostics.error('overrides-type', '`overrides` must be a map of config keys, like `{ lr: 4e-6 }`', item.value.range);
    return;
  }
  const overrides = evaluateLocated(item.value, scope, diagnostics);
  if (!overrides) return;
  // `overrides` may come before `config`: keep it until the path arrives.
  draft.config = { path: draft.config?.path ?? '', range: draft.config?.range ?? item.value.range, overrides };
}

function checkedValue(name: string, expr: Expression, param: ParamSpec, scope: Scope, diagnostics: Diagnostics): Value | undefined {
  if (holdsReference(expr)) {
    diagnostics.error('reference-not-allowed', `\`${name}\` is a parameter, not an input: it cannot take an output reference`, expr.range);
    return undefined;
  }
  const value = evaluate(expr, scope, diagnostics);
  if (value === undefined) return undefined;
  const wrong = typeMismatch(value, param.type);
  if (wrong) {
    const oneOf = param.type.kind === 'string' && param.type.oneOf && typeof value === 'string' ? didYouMean(value, param.type.oneOf) : {};
    diagnostics.error('param-type', `\`${name}${wrong.path}\` must be ${wrong.expected}, but it is ${wrong.actual}`, expr.range, oneOf);
    return undefined;
  }
  return value;
}

function resource(name: string, item: Assignment, draft: TaskDraft, scope: Scope, diagnostics: Diagnostics): void {
  const value = evaluate(item.value, scope, diagnostics);
  if (value === undefined) return;
  if (name === 'device') {
    if (typeof value === 'string' && /^(cpu|auto|cuda(:\d{1,4})?)$/.test(value)) draft.resources.device = value;
    else diagnostics.error('resource-type', '`device` must be "cpu", "cuda", "cuda:N" or "auto"', item.value.range);
    return;
  }
  if (name === 'memory') {
    const bytes = parseMemory(value);
    if (bytes === undefined) diagnostics.error('resource-type', '`memory` must be a number of bytes or a size like "8GiB"', item.value.range);
    else draft.resources.memory = bytes;
    return;
  }
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || (name === 'cpus' && value < 1)) {
    diagnostics.error('resource-type', `\`${name}\` must be ${name === 'cpus' ? 'a positive' : 'a non-negative'} integer`, item.value.range);
    return;
  }
  if (name === 'retries') draft.retries = value;
  else if (name === 'gpus') {
    draft.resources.gpus = value;
    (draft as { gpusRange?: SourceRange }).gpusRange = item.value.range;
  } else draft.resources.cpus = value;
}

function publish(output: string, pathExpr: Expression, range: SourceRange, info: StageInfo, draft: TaskDraft, scope: Scope, diagnostics: Diagnostics): void {
  if (!info.outputs.has(output)) {
    diagnostics.error('unknown-output', `stage \`${info.decl.name.name}\` has no output \`${output}\` to publish`, range, {
      ...didYouMean(output, info.outputs.keys()),
    });
    return;
  }
  const path = evaluate(pathExpr, scope, diagnostics);
  if (path === undefined) return;
  if (typeof path !== 'string' || path === '') {
    diagnostics.error('publish-path-type', 'a publish destination must be a non-empty path', pathExpr.range);
    return;
  }
  draft.publishes.push({ output, path, range: pathExpr.range });
}

/** An input's value: references (one, a member, all members), literal paths, or a list of them. */
function resolveInput(
  name: string,
  expr: Expression,
  types: readonly ArtifactType[],
  many: boolean,
  scope: Scope,
  ctx: StageContext,
): InputDraft | undefined {
  const sources: InputSource[] = [];
  const refs: InputDraft['refs'][number][] = [];
  let ok = true;
  const items = expr.kind === 'List' ? expr.items : [expr];
  if (expr.kind === 'List' && !many) {
    ctx.diagnostics.error('input-not-many', `\`${name}\` takes one artifact (${typesText(types)}), not a list`, expr.range);
    return undefined;
  }
  for (const item of items) {
    const got = item.kind === 'OutputRef' ? referenceSources(name, item, types, many, scope, ctx) : pathSource(name, item, scope, ctx);
    if (!got) {
      ok = false;
      continue;
    }
    sources.push(...got.sources);
    refs.push(...got.refs);
  }
  if (!ok) return undefined;
  const firstType = refs.find((r) => r.type)?.type ?? types[0] ?? 'file';
  return { name, type: firstType, sources, fanIn: many, range: expr.range, refs };
}

function referenceSources(
  name: string,
  ref: OutputRef,
  types: readonly ArtifactType[],
  many: boolean,
  scope: Scope,
  ctx: StageContext,
): { sources: InputSource[]; refs: InputDraft['refs'][number][] } | undefined {
  const { diagnostics } = ctx;
  const stageName = ref.stage.name;
  const target = ctx.stages.get(stageName);
  if (!target) {
    diagnostics.error('unknown-stage', `unknown stage \`${stageName}\``, ref.stage.range, didYouMean(stageName, ctx.stages.keys()));
    return undefined;
  }
  if (target.broken) return undefined;
  const output = target.outputs.get(ref.output.name);
  if (!output) {
    diagnostics.error('unknown-output', `stage \`${stageName}\` has no output \`${ref.output.name}\``, ref.output.range, {
      ...didYouMean(ref.output.name, target.outputs.keys()),
      ...(didYouMean(ref.output.name, target.outputs.keys()).help === undefined
        ? { help: `its outputs are ${[...target.outputs.keys()].map((o) => `\`${o}\``).join(', ') || 'none'}` }
        : {}),
    });
    return undefined;
  }

  let indices: (number | undefined)[];
  if (ref.index === undefined) {
    if (target.members) {
      diagnostics.error('fan-out-needs-index', `stage \`${stageName}\` is fanned out into ${target.members.length} tasks: say which`, ref.stage.range, {
        help: `use \`${stageName}[*].${ref.output.name}\` for all of them, or \`${stageName}[i].${ref.output.name}\` for one`,
      });
      return undefined;
    }
    indices = [undefined];
  } else if (!target.members) {
    diagnostics.error(
      ref.index.kind === 'All' ? 'fan-in-not-fanned-out' : 'index-not-fanned-out',
      `stage \`${stageName}\` is not fanned out, so \`${stageName}[${ref.index.kind === 'All' ? '*' : '…'}]\` has nothing to ${ref.index.kind === 'All' ? 'collect' : 'index'}`,
      ref.index.range,
      { help: `write \`${stageName}.${ref.output.name}\`` },
    );
    return undefined;
  } else if (ref.index.kind === 'All') {
    if (!many) {
      diagnostics.error('input-not-many', `\`${name}\` takes one artifact, but \`${stageName}[*].${ref.output.name}\` gives ${target.members.length}`, ref.range, {
        help: `pick one member: \`${stageName}[0].${ref.output.name}\``,
      });
      return undefined;
    }
    indices = target.members.map((_, i) => i);
  } else {
    const at = evaluate(ref.index, scope, diagnostics);
    if (at === undefined) return undefined;
    if (typeof at !== 'number' || !Number.isInteger(at)) {
      diagnostics.error('index-type', 'a fan-out index must be an integer', ref.index.range);
      return undefined;
    }
    if (at < 0 || at >= target.members.length) {
      diagnostics.error('index-out-of-range', `\`${stageName}[${at}]\` is out of range: \`${stageName}\` has ${target.members.length} members (0..${target.members.length - 1})`, ref.index.range);
      return undefined;
    }
    indices = [at];
  }

  if (!types.includes(output.type)) {
    diagnostics.error('input-type', `\`${name}\` expects ${typesText(types)}, but \`${referenceText(ref)}\` is ${article(output.type)}`, ref.range);
    return undefined;
  }

  const sources: InputSource[] = [];
  const refs: InputDraft['refs'][number][] = [];
  for (const i of indices) {
    const label = `${memberId(stageName, i)}.${ref.output.name}`;
    const provided = ctx.provided.get(provideKey(stageName, i, ref.output.name));
    if (provided !== undefined) sources.push({ kind: 'path', path: provided });
    else sources.push({ kind: 'task', task: memberId(stageName, i), output: ref.output.name });
    refs.push({ range: ref.range, label, type: output.type });
  }
  return { sources, refs };
}

function pathSource(name: string, expr: Expression, scope: Scope, ctx: StageContext): { sources: InputSource[]; refs: InputDraft['refs'][number][] } | undefined {
  const value = evaluate(expr, scope, ctx.diagnostics);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    ctx.diagnostics.error('input-value', `\`${name}\` must be a reference like \`stage.output\` or a path`, expr.range);
    return undefined;
  }
  const absolute = isAbsolute(value) ? value : join(ctx.root, value);
  try {
    statSync(absolute);
  } catch {
    ctx.diagnostics.error('missing-input-file', `input \`${name}\`: \`${value}\` does not exist`, expr.range);
    return undefined;
  }
  return { sources: [{ kind: 'path', path: value }], refs: [{ range: expr.range, label: value }] };
}

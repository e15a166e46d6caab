// compilePipeline: a .cf file (and its includes) → a task graph with fan-out expanded, configs
// resolved and cache keys computed, or the diagnostics that say why not. Never throws for a user
// mistake; `check`, `plan` and `run` all go through here.

import { existsSync, statSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, relative, resolve } from 'node:path';
import type { DefaultDecl, ParamDecl, ProvideDecl, SourceRange, StageDecl } from '../../grammar/ast.js';
import { hasErrors, type Diagnostic } from '../../grammar/diagnostic.js';
import type { Task, TaskGraph, TaskInput, TaskOutput, Value } from '../graph.js';
import { DEFAULT_CONFIG, resolveStageConfig, type StageConfig } from '../config/index.js';
import { ENGINE_ABI_VERSION, hashKey, KEY_SCHEMA_VERSION } from '../key/index.js';
import { didYouMean, Diagnostics } from './diagnostics.js';
import type { Scope } from './evaluate.js';
import { evaluate } from './evaluate.js';
import { loadPipeline, plainText } from './load.js';
import type { CompileOptions } from './options.js';
import { topologicalOrder } from './order.js';
import { loadParamFiles } from './param-files.js';
import { resolveParams } from './params.js';
import { detectGpus } from './resources.js';
import { artifactPhrase as article, memberId, provideKey, stageDrafts, stageInfo, type StageInfo, type TaskDraft } from './stages.js';

export type { CompileOptions } from './options.js';

export interface CompileResult {
  /** Present when there are no errors (warnings are fine). */
  readonly graph?: TaskGraph;
  readonly diagnostics: Diagnostic[];
  /** Every file read (pipelines and YAML), by the name diagnostics use, for rendering. */
  readonly sources: Map<string, string>;
}

/** Kinds whose results come from the native engine: its numerics version is part of their key. */
const NATIVE_KINDS = new Set(['train', 'ode_pairs', 'infer']);

/** The project root: the nearest folder above the pipeline holding configs/ or package.json. */
export function findRoot(start: string): string {
  let dir = resolve(start);
  for (;;) {
    if (existsSync(join(dir, DEFAULT_CONFIG)) || existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/** How files are named in diagnostics: relative to the working directory when inside it. */
export function displayPath(absolute: string): string {
  const rel = relative(process.cwd(), absolute);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : absolute;
}

export function compilePipeline(path: string, options: CompileOptions = {}): CompileResult {
  const diagnostics = new Diagnostics();
  const root = resolve(options.root ?? findRoot(dirname(resolve(path))));
  const loaded = loadPipeline(path, displayPath, diagnostics, options.overlay);
  const sources = loaded.sources;
  const done = (): CompileResult => ({ diagnostics: diagnostics.finish(), sources });
  if (!loaded.main || hasErrors(diagnostics.list)) return done();

  // -- declarations of every file
  const paramDecls: ParamDecl[] = [];
  const stageDecls: StageDecl[] = [];
  const provideDecls: ProvideDecl[] = [];
  const defaultDecls: DefaultDecl[] = [];
  let pipelineName: string | undefined;
  for (const file of loaded.files) {
    for (const statement of file.file.statements) {
      switch (statement.kind) {
        case 'Param':
          paramDecls.push(statement);
          break;
        case 'Stage':
          stageDecls.push(statement);
          break;
        case 'Provide':
          provideDecls.push(statement);
          break;
        case 'Default':
          // Only the file named on the command line picks targets; an included file's are its own.
          if (file === loaded.main) defaultDecls.push(statement);
          break;
        case 'Pipeline':
          if (file === loaded.main) pipelineName = plainText(statement.name);
          break;
        case 'Include':
          break;
      }
    }
  }

  const paramFiles = loadParamFiles(options.paramFiles ?? [], displayPath, diagnostics, sources);
  const params = resolveParams(paramDecls, options.set ?? {}, diagnostics, paramFiles);
  const scope: Scope = {
    lookup: (name) => params.values.get(name),
    declared: (name) => params.decls.has(name),
    names: () => params.decls.keys(),
  };

  const stages = new Map<string, StageInfo>();
  for (const decl of stageDecls) {
    const earlier = stages.get(decl.name.name);
    if (earlier) {
      diagnostics.error('duplicate-stage', `stage \`${decl.name.name}\` is declared twice`, decl.name.range, {
        related: [{ message: 'first declared here', range: earlier.decl.name.range }],
      });
      continue;
    }
    stages.set(decl.name.name, stageInfo(decl, scope, diagnostics));
  }

  const provided = collectProvided(provideDecls, options.use ?? {}, stages, scope, root, diagnostics);
  const ctx = { root, params: scope, stages, provided, diagnostics };
  const drafts: TaskDraft[] = [];
  for (const info of stages.values()) drafts.push(...stageDrafts(info, ctx));

  const configs = new Map<string, StageConfig>();
  for (const draft of drafts) {
    const config = stageConfig(draft, root, diagnostics);
    if (!config) continue;
    configs.set(draft.id, config);
    for (const [name, text] of config.sources) sources.set(name, text);
    checkTrainerInputs(draft, config, diagnostics);
  }

  checkPublishes(drafts, diagnostics);
  checkGpus(drafts, options.gpusAvailable, diagnostics);
  const order = topologicalOrder(drafts, diagnostics);
  const targets = defaultTargets(defaultDecls, stages, drafts, diagnostics);
  if (!order || hasErrors(diagnostics.list)) return done();

  const byId = new Map(drafts.map((d) => [d.id, d]));
  const keys = new Map<string, string>();
  const tasks: Task[] = [];
  for (const id of order) {
    const task = buildTask(byId.get(id)!, configs.get(id), keys, root);
    keys.set(id, task.key);
    tasks.push(task);
  }
  const graph: TaskGraph = {
    pipeline: pipelineName ?? basename(loaded.main.absolute).replace(/\.cf$/, ''),
    file: loaded.main.display,
    params: Object.fromEntries(params.values),
    tasks,
    defaults: targets,
  };
  return { graph, diagnostics: diagnostics.finish(), sources };
}

function collectProvided(
  decls: readonly ProvideDecl[],
  use: Readonly<Record<string, string>>,
  stages: ReadonlyMap<string, StageInfo>,
  scope: Scope,
  root: string,
  diagnostics: Diagnostics,
): Map<string, string> {
  const provided = new Map<string, string>();
  const firstAt = new Map<string, SourceRange>();
  const exists = (path: string): boolean => existsSync(isAbsolute(path) ? path : join(root, path));

  const target = (stageName: string, index: number | 'all' | undefined, output: string, range: SourceRange | undefined): string | undefined => {
    const info = stages.get(stageName);
    if (!info) {
      diagnostics.error('unknown-stage', `unknown stage \`${stageName}\``, range, didYouMean(stageName, stages.keys()));
      return undefined;
    }
    if (info.broken) return undefined;
    if (!info.outputs.has(output)) {
      diagnostics.error('unknown-output', `stage \`${stageName}\` has no output \`${output}\``, range, didYouMean(output, info.outputs.keys()));
      return undefined;
    }
    if (index === 'all') {
      diagnostics.error('provide-all', 'provide one fan-out member at a time (`stage[0].output`)', range);
      return undefined;
    }
    if (info.members === undefined && index !== undefined) {
      diagnostics.error('index-not-fanned-out', `stage \`${stageName}\` is not fanned out`, range, { help: `write \`${stageName}.${output}\`` });
      return undefined;
    }
    if (info.members !== undefined && index === undefined) {
      diagnostics.error('fan-out-needs-index', `stage \`${stageName}\` is fanned out: provide one member, like \`${stageName}[0].${output}\``, range);
      return undefined;
    }
    if (index !== undefined && info.members && (index < 0 || index >= info.members.length)) {
      diagnostics.error('index-out-of-range', `\`${stageName}[${index}]\` is out of range: \`${stageName}\` has ${info.members.length} members`, range);
      return undefined;
    }
    return provideKey(stageName, index, output);
  };

  for (const decl of decls) {
    const ref = decl.target;
    let index: number | 'all' | undefined;
    if (ref.index?.kind === 'All') index = 'all';
    else if (ref.index) {
      const at = evaluate(ref.index, scope, diagnostics);
      if (typeof at !== 'number' || !Number.isInteger(at)) {
        if (at !== undefined) diagnostics.error('index-type', 'a fan-out index must be an integer', ref.index.range);
        continue;
      }
      index = at;
    }
    const key = target(ref.stage.name, index, ref.output.name, ref.range);
    const path = evaluate(decl.path, scope, diagnostics);
    if (key === undefined || path === undefined) continue;
    if (typeof path !== 'string' || path === '') {
      diagnostics.error('provide-path-type', 'a provided artifact must be a path', decl.path.range);
      continue;
    }
    if (firstAt.has(key)) {
      diagnostics.error('duplicate-provide', `\`${ref.stage.name}.${ref.output.name}\` is provided twice`, ref.range, {
        related: [{ message: 'first provided here', range: firstAt.get(key)! }],
      });
      continue;
    }
    firstAt.set(key, ref.range);
    if (!exists(path)) {
      diagnostics.error('missing-provided-file', `provided artifact \`${path}\` does not exist`, decl.path.range);
      continue;
    }
    provided.set(key, path);
  }

  for (const [spec, path] of Object.entries(use)) {
    const match = /^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?\.([A-Za-z_][A-Za-z0-9_]*)$/.exec(spec);
    if (!match) {
      diagnostics.error('bad-use', `\`--use ${spec}=${path}\`: expected \`stage.output=PATH\` or \`stage[i].output=PATH\``, undefined);
      continue;
    }
    const key = target(match[1]!, match[2] === undefined ? undefined : Number(match[2]), match[3]!, undefined);
    if (key === undefined) continue;
    if (!exists(path)) {
      diagnostics.error('missing-provided-file', `\`--use ${spec}=${path}\`: \`${path}\` does not exist`, undefined);
      continue;
    }
    provided.set(key, path);
  }
  return provided;
}

function stageConfig(draft: TaskDraft, root: string, diagnostics: Diagnostics): StageConfig | undefined {
  const spec = draft.stage.spec;
  if (!spec?.config) return undefined;
  let request = draft.config;
  if (!request || request.path === '') {
    if (spec.config.required) {
      if (request) {
        diagnostics.error('missing-config-property', `stage \`${draft.stage.decl.name.name}\` (${spec.name}) has \`overrides\` but no \`config = "configs/....yaml"\``, draft.stage.decl.name.range);
      }
      return undefined;
    }
    request = { ...request, path: DEFAULT_CONFIG, range: draft.stage.decl.name.range };
  }
  const trainer = draft.params['trainer'];
  const trainerRange = draft.paramRanges.get('trainer');
  const steps = draft.params['steps'];
  const result = resolveStageConfig({
    root,
    path: request.path,
    pathRange: request.range,
    use: spec.config,
    ...(request.overrides ? { overrides: request.overrides } : {}),
    ...(typeof trainer === 'string' && trainerRange ? { trainer: { value: trainer, range: trainerRange } } : {}),
    ...(spec.name === 'train' && typeof steps === 'number' ? { steps } : {}),
    display: displayPath,
  });
  diagnostics.addAll(result.diagnostics);
  return result;
}

/** A train stage's inputs against what its trainer reads (DMD wants prompts and a real score...). */
function checkTrainerInputs(draft: TaskDraft, config: StageConfig, diagnostics: Diagnostics): void {
  const spec = draft.stage.spec;
  const trainer = config.consumer;
  const rules = trainer && spec?.trainerInputs?.[trainer];
  if (!rules) return;
  const stage = draft.stage.decl.name.name;
  for (const [name, types] of Object.entries(rules.required)) {
    if (spec?.inputs[name]?.required) continue; // already reported for every trainer
    const given = draft.inputs.find((i) => i.name === name);
    const written = draft.stage.decl.items.some((i) => i.kind === 'Assign' && i.name.name === name);
    if (!given && !written) {
      diagnostics.error('missing-input', `stage \`${stage}\` uses the \`${trainer}\` trainer, which needs the input \`${name}\``, draft.stage.decl.name.range, {
        help: `add \`${name} = <stage>.<output>\` (${types.join(' or ')})`,
      });
    }
  }
  for (const input of draft.inputs) {
    const types = rules.required[input.name] ?? rules.optional[input.name];
    if (!types) {
      diagnostics.error('input-not-used', `the \`${trainer}\` trainer takes no \`${input.name}\` input`, input.range, {
        help: `its inputs are ${[...Object.keys(rules.required), ...Object.keys(rules.optional)].map((n) => `\`${n}\``).join(', ')}`,
      });
      continue;
    }
    for (const ref of input.refs) {
      if (ref.type && !types.includes(ref.type)) {
        diagnostics.error('input-type', `\`${input.name}\` of the \`${trainer}\` trainer expects ${types.map(article).join(' or ')}, but \`${ref.label}\` is ${article(ref.type)}`, ref.range);
      }
    }
  }
}


function checkPublishes(drafts: readonly TaskDraft[], diagnostics: Diagnostics): void {
  const seen = new Map<string, { id: string; range: SourceRange }>();
  for (const draft of drafts) {
    const outputs = new Set<string>();
    for (const p of draft.publishes) {
      if (outputs.has(p.output)) {
        diagnostics.error('publish-twice', `output \`${p.output}\` of \`${draft.id}\` is published twice`, p.range);
        continue;
      }
      outputs.add(p.output);
      const key = normalize(p.path);
      const first = seen.get(key);
      if (first) {
        diagnostics.error('publish-collision', `\`${draft.id}.${p.output}\` and \`${first.id}\` both publish to \`${p.path}\``, p.range, {
          related: [{ message: `\`${first.id}\` publishes here`, range: first.range }],
          ...(draft.stage.members ? { help: `put the fan-out variable in the path, e.g. "...\${${draft.stage.decl.fanOut?.variable.name}}..."` } : {}),
        });
        continue;
      }
      seen.set(key, { id: `${draft.id}.${p.output}`, range: p.range });
    }
  }
}

function checkGpus(drafts: readonly TaskDraft[], available: number | undefined, diagnostics: Diagnostics): void {
  const asking = drafts.filter((d) => d.resources.gpus > 0);
  if (asking.length === 0) return;
  const gpus = available ?? detectGpus();
  for (const draft of asking) {
    if (draft.resources.gpus > gpus) {
      diagnostics.error(
        'gpus-unavailable',
        `stage \`${draft.stage.decl.name.name}\` asks for ${draft.resources.gpus} GPU${draft.resources.gpus === 1 ? '' : 's'}, but ${available === undefined ? 'this machine has' : '`--gpus` allows'} ${gpus}`,
        draft.gpusRange,
        { help: 'lower `gpus`, or check the plan for a bigger machine with `--gpus N`' },
      );
    }
  }
}

function defaultTargets(decls: readonly DefaultDecl[], stages: ReadonlyMap<string, StageInfo>, drafts: readonly TaskDraft[], diagnostics: Diagnostics): string[] {
  if (decls.length === 0) return drafts.map((d) => d.id);
  const out: string[] = [];
  for (const decl of decls) {
    for (const target of decl.targets) {
      const info = stages.get(target.name);
      if (!info) {
        diagnostics.error('unknown-stage', `unknown stage \`${target.name}\` in \`default\``, target.range, didYouMean(target.name, stages.keys()));
        continue;
      }
      const count = info.members?.length;
      if (count === undefined) out.push(target.name);
      else for (let i = 0; i < count; i++) out.push(memberId(target.name, i));
    }
  }
  return [...new Set(out)];
}

/** What a path contributes to a key until the runner hashes contents: its identity on disk. */
function pathIdentity(path: string, root: string): Value {
  try {
    const stat = statSync(isAbsolute(path) ? path : join(root, path));
    return { path, size: stat.size, mtimeMs: stat.mtimeMs };
  } catch {
    return { path, size: null, mtimeMs: null };
  }
}

function buildTask(draft: TaskDraft, config: StageConfig | undefined, keys: ReadonlyMap<string, string>, root: string): Task {
  const info = draft.stage;
  const spec = info.spec!;
  const decl = info.decl;
  const inputs: TaskInput[] = draft.inputs.map((i) => ({ name: i.name, type: i.type, sources: i.sources, fanIn: i.fanIn }));
  const published = new Map(draft.publishes.map((p) => [p.output, p.path]));
  const outputs: TaskOutput[] = [...info.outputs].map(([name, out]) => ({
    name,
    type: out.type,
    ...(published.has(name) ? { publish: published.get(name)! } : {}),
    ...(out.path !== undefined ? { path: out.path } : {}),
  }));
  const deps = [...new Set(draft.inputs.flatMap((i) => i.sources.flatMap((s) => (s.kind === 'task' ? [s.task] : []))))].sort();

  const semanticParams: { [name: string]: Value } = {};
  for (const [name, value] of Object.entries(draft.params)) {
    if (spec.params[name]?.semantic !== false) semanticParams[name] = value;
  }
  const keyParts: { [part: string]: Value } = {
    schema: KEY_SCHEMA_VERSION,
    kind: spec.name,
    engine: NATIVE_KINDS.has(spec.name) ? ENGINE_ABI_VERSION : null,
    config: config?.keyValues ?? null,
    params: semanticParams,
    fanOut: draft.memberIndex === undefined ? null : (info.members?.[draft.memberIndex] ?? null),
    inputs: [...draft.inputs]
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .map((i) => ({
        name: i.name,
        sources: i.sources.map((s) => (s.kind === 'task' ? { task: keys.get(s.task) ?? null, output: s.output } : pathIdentity(s.path, root))),
      })),
    outputs: spec.declaredOutputs ? outputs.map((o) => ({ name: o.name, type: o.type, path: o.path ?? null })) : null,
  };

  return {
    id: draft.id,
    stage: decl.name.name,
    kind: spec.name,
    ...(draft.memberIndex !== undefined && decl.fanOut
      ? { fanOut: { variable: decl.fanOut.variable.name, value: info.members![draft.memberIndex]!, index: draft.memberIndex } }
      : {}),
    params: draft.params,
    ...(config?.config ? { config: config.config } : {}),
    inputs,
    outputs,
    deps,
    resources: draft.resources,
    retries: draft.retries,
    key: hashKey(keyParts),
    keyParts,
    range: decl.range,
  };
}

// The plan as a person reads it: one line per task in topological order with its state, short
// key, the device when any task runs off the CPU, the tasks it reads from, and the reason.

import { shortKey } from '../key/index.js';
import type { Plan, PlanEntry } from './plan.js';

export function renderPlanText(plan: Plan): string {
  const { graph, entries } = plan;
  const idWidth = Math.min(32, entries.reduce((w, e) => Math.max(w, e.task.id.length), 4));
  const kindWidth = entries.reduce((w, e) => Math.max(w, e.task.kind.length), 4);
  // A device column only when some task is off the CPU, so an all-CPU plan reads as it always has.
  const deviceWidth = entries.reduce((w, e) => (e.device === undefined ? w : Math.max(w, 3, e.device.length)), 0);
  const device = (e: PlanEntry): string => (deviceWidth === 0 ? '' : `${(e.device ?? 'cpu').padEnd(deviceWidth)}  `);
  const counts = new Map<string, number>();
  for (const e of entries) counts.set(e.state, (counts.get(e.state) ?? 0) + 1);
  const summary = [...counts].map(([state, n]) => `${n} ${state}`).join(', ');
  const lines: string[] = [`pipeline ${graph.pipeline} (${graph.file}): ${entries.length} task${entries.length === 1 ? '' : 's'}, ${summary || 'nothing to do'}`];
  for (const e of entries) {
    const deps = e.task.deps.length === 0 ? '' : `  ← ${abbreviate(e.task.deps)}`;
    lines.push(`${e.state.padEnd(9)} ${shortKey(e.key)}  ${e.task.id.padEnd(idWidth)}  ${e.task.kind.padEnd(kindWidth)}  ${device(e)}${e.reason}${deps}`);
  }
  return lines.join('\n') + '\n';
}

/** Long dependency lists (a fan-in of 100 shards) are shortened: `ode[0], ode[1], … (100)`. */
function abbreviate(deps: readonly string[]): string {
  return deps.length <= 6 ? deps.join(', ') : `${deps.slice(0, 4).join(', ')}, … (${deps.length})`;
}

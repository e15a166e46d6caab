// Topological order of the task drafts, and cycles reported as paths `a → b → c → a` with the
// reference that makes each edge. Iterative (no recursion) so 100 000-task graphs are fine.

import type { SourceRange } from '../../grammar/ast.js';
import type { Diagnostics } from './diagnostics.js';

export interface OrderNode {
  readonly id: string;
  readonly edges: readonly { readonly to: string; readonly range: SourceRange }[];
}

/** Ids in an order where every task comes after the tasks it reads; undefined when cyclic. */
export function topologicalOrder(nodes: readonly OrderNode[], diagnostics: Diagnostics): string[] | undefined {
  const index = new Map<string, number>();
  nodes.forEach((n, i) => index.set(n.id, i));
  const deps: number[][] = nodes.map((n) => [...new Set(n.edges.map((e) => index.get(e.to)).filter((i): i is number => i !== undefined))]);

  // Kahn's algorithm in declaration order (stable output for plans and tests).
  const dependents: number[][] = nodes.map(() => []);
  const waiting = deps.map((d) => d.length);
  deps.forEach((d, i) => d.forEach((j) => dependents[j]!.push(i)));
  const ready: number[] = [];
  for (let i = 0; i < nodes.length; i++) if (waiting[i] === 0) ready.push(i);
  const order: string[] = [];
  for (let head = 0; head < ready.length; head++) {
    const i = ready[head]!;
    order.push(nodes[i]!.id);
    for (const j of dependents[i]!) if (--waiting[j]! === 0) ready.push(j);
  }
  if (order.length === nodes.length) return order;

  // Some tasks wait forever: walk dependencies among them until a task repeats.
  const stuck = new Set<number>();
  for (let i = 0; i < nodes.length; i++) if (waiting[i]! > 0) stuck.add(i);
  const reported = new Set<number>();
  for (const start of stuck) {
    if (reported.has(start)) continue;
    const path: number[] = [];
    const onPath = new Map<number, number>();
    let at = start;
    while (!onPath.has(at)) {
      onPath.set(at, path.length);
      path.push(at);
      const next = deps[at]!.find((j) => stuck.has(j));
      if (next === undefined) break;
      at = next;
    }
    if (!onPath.has(at) || reported.has(at)) continue;
    const cycle = path.slice(onPath.get(at)!);
    if (cycle.some((c) => reported.has(c))) continue;
    cycle.forEach((c) => reported.add(c));
    // Shown in data-flow direction (producer → consumer), from the stage declared first.
    const reversed = [...cycle].reverse();
    const startAt = reversed.indexOf(Math.min(...reversed));
    const flow = [...reversed.slice(startAt), ...reversed.slice(0, startAt)];
    const names = [...flow, flow[0]!].map((i) => nodes[i]!.id);
    const edgeRange = (from: number, to: number): SourceRange | undefined =>
      nodes[to]!.edges.find((e) => e.to === nodes[from]!.id)?.range;
    const ranges = flow.map((from, k) => ({ from, to: flow[(k + 1) % flow.length]!, range: edgeRange(from, flow[(k + 1) % flow.length]!) }));
    const [first, ...rest] = ranges;
    diagnostics.error('cycle', `these stages form a cycle: ${names.join(' → ')}`, first?.range, {
      related: rest
        .filter((r) => r.range)
        .map((r) => ({ message: `\`${nodes[r.to]!.id}\` reads from \`${nodes[r.from]!.id}\` here`, range: r.range! })),
      help: 'a stage cannot depend, directly or through others, on its own output',
    });
  }
  return undefined;
}

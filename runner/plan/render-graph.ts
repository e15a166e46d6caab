// The plan as a picture: Graphviz dot and Mermaid. One node per task (id, kind, state), one edge
// per input source, labelled with the output it carries.

import type { Plan, TaskState } from './plan.js';

const FILL: Readonly<Record<TaskState, string>> = {
  fresh: '#d8f0d8',
  cached: '#d8e8f8',
  resumable: '#fff0c0',
  run: '#f8d8d0',
};

/** A dot string literal (quotes and backslashes escaped, newlines as \n). */
const dotString = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

export function renderPlanDot(plan: Plan): string {
  const lines = [
    `digraph ${dotString(plan.graph.pipeline)} {`,
    '  rankdir=LR;',
    '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
    '  edge [fontname="Helvetica", fontsize=8, color="#555555"];',
  ];
  for (const { task, state } of plan.entries) {
    lines.push(`  ${dotString(task.id)} [label=${dotString(`${task.id}\n${task.kind} · ${state}`)}, fillcolor=${dotString(FILL[state])}];`);
  }
  for (const { task } of plan.entries) {
    for (const input of task.inputs) {
      for (const source of input.sources) {
        if (source.kind !== 'task') continue;
        lines.push(`  ${dotString(source.task)} -> ${dotString(task.id)} [label=${dotString(`${source.output} → ${input.name}`)}];`);
      }
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Mermaid label text: quotes and angle brackets as entities so any id is safe. */
const mermaidText = (s: string): string => s.replace(/&/g, '#amp;').replace(/"/g, '#quot;').replace(/</g, '#lt;').replace(/>/g, '#gt;');

export function renderPlanMermaid(plan: Plan): string {
  const ids = new Map(plan.entries.map((e, i) => [e.task.id, `t${i}`]));
  const lines = ['flowchart LR'];
  for (const { task, state } of plan.entries) {
    lines.push(`  ${ids.get(task.id)}["${mermaidText(task.id)}<br/>${mermaidText(task.kind)} · ${state}"]:::${state}`);
  }
  for (const { task } of plan.entries) {
    for (const input of task.inputs) {
      for (const source of input.sources) {
        if (source.kind !== 'task') continue;
        lines.push(`  ${ids.get(source.task)} -->|${mermaidText(`${source.output} → ${input.name}`)}| ${ids.get(task.id)}`);
      }
    }
  }
  for (const [state, fill] of Object.entries(FILL)) lines.push(`  classDef ${state} fill:${fill},stroke:#777`);
  return lines.join('\n') + '\n';
}

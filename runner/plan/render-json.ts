// The plan as JSON for CI and tools: { pipeline, file, params, defaults, tasks: [...] }.

import type { Plan } from './plan.js';

export function planToJson(plan: Plan): object {
  const { graph } = plan;
  return {
    pipeline: graph.pipeline,
    file: graph.file,
    params: graph.params,
    defaults: graph.defaults,
    tasks: plan.entries.map(({ task, state, reason }) => ({
      id: task.id,
      stage: task.stage,
      kind: task.kind,
      inputs: task.inputs,
      outputs: task.outputs,
      deps: task.deps,
      key: task.key,
      state,
      reason,
      params: task.params,
      ...(task.config ? { config: task.config.path } : {}),
      resources: task.resources,
    })),
  };
}

export const renderPlanJson = (plan: Plan): string => JSON.stringify(planToJson(plan), null, 2) + '\n';

// The plan as JSON for CI and tools: { pipeline, file, params, defaults, tasks: [...] }.

import type { Plan } from './plan.js';
import { previewCommandLine } from '../kinds/launch/upstream_command.js';

export function planToJson(plan: Plan): object {
  const { graph } = plan;
  return {
    pipeline: graph.pipeline,
    file: graph.file,
    params: graph.params,
    defaults: graph.defaults,
    tasks: plan.entries.map(({ task, key, device, state, reason }) => ({
      id: task.id,
      stage: task.stage,
      kind: task.kind,
      inputs: task.inputs,
      outputs: task.outputs,
      deps: task.deps,
      key,
      ...(device !== undefined ? { device } : {}),
      state,
      reason,
      params: task.params,
      ...(task.config ? { config: task.config.path } : {}),
      resources: task.resources,
      // The launcher's command line (upstream and torchrun stages), as it will run on node 0.
      ...((line) => (line === undefined ? {} : { command_line: line }))(previewCommandLine(task)),
    })),
  };
}

export const renderPlanJson = (plan: Plan): string => JSON.stringify(planToJson(plan), null, 2) + '\n';

// Plans: states per task (with the runner's hook) and their renderings.
export { buildPlan, neverBuilt } from './plan.js';
export type { Plan, PlanEntry, StateOracle, TaskState, TaskStatus } from './plan.js';
export { renderPlanText } from './render-text.js';
export { renderPlanJson, planToJson } from './render-json.js';
export { renderPlanDot, renderPlanMermaid } from './render-graph.js';

// Configs: YAML loading with locations, checking against the registry, merging for a stage.
export { resolveStageConfig, deepMerge, semanticPart, DEFAULT_CONFIG } from './resolve.js';
export type { StageConfigRequest, StageConfig } from './resolve.js';
export { parseYamlConfig, loadYamlFile } from './yaml.js';
export type { YamlConfig } from './yaml.js';
export { checkConfigLayer } from './validate.js';
export type { Located } from './located.js';
export { typeMismatch, describeType, describeValue } from './types.js';

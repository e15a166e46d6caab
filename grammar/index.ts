// The public face of the .cf front end. Everything other layers need comes from here.

export type * from './ast.js';
export type { Diagnostic, Severity, WithDiagnostics } from './diagnostic.js';
export { hasErrors } from './diagnostic.js';
export { parsePipeline, type ParseResult } from './parse.js';
export { suggest, editDistance } from './suggest.js';
export { paramTypes } from './checks.js';
export { LineIndex, lineText } from './lines.js';
export { renderText, renderJson, renderGithub, toJsonDiagnostic, type RenderOptions, type JsonDiagnostic } from './render.js';
export { formatPipeline, formatSource, inlineValue } from './format.js';

/**
 * The spec: images.yaml → a validated, normalised, frozen `Spec`. Pure modules take ports; the
 * real ports live in `node-ports.ts`.
 */
export * from './model.js';
export type { SpecFs, SpecPorts, GitInfo, EntryKind } from './ports.js';
export { loadSpec, loadSpecText, displayPath, DEFAULT_SPEC_FILE, stageImage } from './load.js';
export { SpecError, formatProblems, type Problem } from './problems.js';
export { canonicalStep, canonicalStepJson, DEFAULT_SHELL } from './steps.js';
export { compileDockerfile, type CompileDockerfileOptions, type DockerfileStage, type CompiledDockerfile } from './dockerfile.js';
export { dockerfileImageSpecs, type DockerfileBuildOptions } from './dockerfile-images.js';
export { IgnoreMatcher, IGNORE_FILES } from './ignore.js';
export { renderTemplate, type TemplateContext } from './template.js';
export { specSummary, formatSummary, type SpecSummary } from './summary.js';

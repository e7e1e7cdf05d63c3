/** The build module: spec images → layers and images in the local store. */
export { buildImage, sourceDateEpochOf, type BuildOptions, type BuiltImage } from './builder.js';
export { dependenciesOf, selectImages, platformOf, stepKey, scratchKey, inputDigestOf } from './dependencies.js';
export type { ImageKeys, ImageKeyer, TreeDigestMemo, CopyPlan } from './dependencies.js';
export { computeImageKeys, rootfsKey, ContextKeyer, type KeyContext } from './keys.js';
export { stepOp } from './step-ops.js';
export type { StepOp, ConfigOp, LayerOp, StepKeying, StepRun } from './step-op.js';
export { detectRunDriver, runInSandbox } from './sandbox.js';
export type { RunDriver, RunRequest, DriverInfo, ParentLayer, SecretMount, RunOutcome } from './sandbox.js';
export { stepLine, type BuildEvent, type BuildListener } from './events.js';
export { FileDigests } from './file-digests.js';

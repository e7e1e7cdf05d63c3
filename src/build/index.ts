/** The build module: spec images → layers and images in the local store. */
export { buildImage, sourceDateEpochOf, type BuildOptions, type BuiltImage } from './builder.js';
export { stepKey } from './step-key.js';
export { computeImageKeys, rootfsKey, scratchKey, type ImageKeys, type KeyContext } from './keys.js';
export { buildSpec, selectImages, dependenciesOf, type SpecBuildOptions } from './graph.js';
export { runInSandbox, detectRunDriver, type RunDriver, type RunRequest, type DriverInfo, type ParentLayer, type SecretMount } from './sandbox.js';
export { stepLine, type BuildEvent, type BuildListener } from './events.js';
export { FileDigests } from './file-digests.js';

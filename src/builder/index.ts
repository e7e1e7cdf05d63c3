/** The build module: spec images → layers and images in the local store. */
export { buildImage, sourceDateEpochOf, type BuildOptions, type BuiltImage } from './builder.js';
export { stepKey } from './step-key.js';
export { computeImageKeys, rootfsKey, scratchKey, type ImageKeys, type KeyContext } from './keys.js';
export { buildSpec, selectImages, dependenciesOf, type SpecBuildOptions } from './graph.js';
export type { RunDriver, RunRequest, DriverInfo, ParentLayer, SecretMount, RunOutcome } from './sandbox.js';
import type { DriverInfo, RunOutcome, RunRequest } from './sandbox.js';
import type { Store } from '../store/store.js';

// The sandbox module is loaded on first use: commands that only read the store or find every step
// cached never need it.

/** See sandbox.ts: which RUN driver works here (probed once per store). */
export async function detectRunDriver(store: Store): Promise<DriverInfo> {
  return (await import('./sandbox.js')).detectRunDriver(store);
}

/** See sandbox.ts: runs one RUN step and hands its diff to `consume`. */
export async function runInSandbox<T>(req: RunRequest, consume: (outcome: RunOutcome) => Promise<T>): Promise<T> {
  return (await import('./sandbox.js')).runInSandbox(req, consume);
}
export { stepLine, type BuildEvent, type BuildListener } from './events.js';
export { FileDigests } from './file-digests.js';

/** ImageSpecs for tests that call the builder directly, without a spec file. */
import type { ImageSpec, Step } from '../../src/specfile/model.js';

/**
 * A normalised ImageSpec as the loader would make it: image `key` on `from` with `steps`, tagged
 * `key:1` in the local store, pushed nowhere; `extra` overrides any field (context, cmd, …).
 */
export function imageSpec(key: string, from: ImageSpec['from'], steps: Step[], extra: Partial<ImageSpec> = {}): ImageSpec {
  return {
    key,
    from,
    steps,
    labels: {},
    annotations: {},
    repository: key,
    tags: ['1'],
    targets: [],
    localRefs: [`docker.io/library/${key}:1`],
    push: [],
    intermediate: false,
    location: { file: 'images.yaml', line: 1, col: 1 },
    ...extra,
  };
}

/**
 * Intermediate Dockerfile stages as images. Kept apart from load.ts so the Dockerfile frontend (dimg
 * image build) does not load the YAML parser and schema validator.
 */
import type { BaseSpec, ImageSpec, Step } from './model.js';

/** An intermediate Dockerfile stage as an image: built like any other, never tagged or pushed. */
export function stageImage(s: {
  key: string;
  from: BaseSpec;
  context?: string;
  dockerfile?: string;
  steps: readonly Step[];
  entrypoint?: readonly string[];
  cmd?: readonly string[];
  platform?: string;
  location: ImageSpec['location'];
}): ImageSpec {
  return {
    key: s.key,
    from: s.from,
    context: s.context,
    dockerfile: s.dockerfile,
    steps: [...s.steps],
    entrypoint: s.entrypoint ? [...s.entrypoint] : undefined,
    cmd: s.cmd ? [...s.cmd] : undefined,
    labels: {},
    annotations: {},
    platform: s.platform,
    repository: s.key.replace(/~/g, '-'),
    tags: [],
    targets: [],
    localRefs: [],
    push: [],
    intermediate: true,
    location: s.location,
  };
}

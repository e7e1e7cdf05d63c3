/** Counting what a spec declares, for `dimg validate`'s one-line summary. */
import type { Spec } from './model.js';

/** Counts of a spec: declared images, Dockerfile stages, rendered tags and registry targets. */
export interface SpecSummary {
  readonly images: number;
  readonly stages: number;
  readonly tags: number;
  readonly targets: number;
}

/** Counts the images (not stages), their tags and their registry destinations. */
export function specSummary(spec: Spec): SpecSummary {
  const images = spec.images.filter((i) => !i.intermediate);
  return {
    images: images.length,
    stages: spec.images.length - images.length,
    tags: images.reduce((n, i) => n + i.tags.length, 0),
    targets: images.reduce((n, i) => n + i.targets.length, 0),
  };
}

/** `4 images, 7 tags, 9 targets` (with `, 1 stage` when there are Dockerfile stages). */
export function formatSummary(s: SpecSummary): string {
  const n = (k: number, word: string) => `${k} ${word}${k === 1 ? '' : 's'}`;
  return [n(s.images, 'image'), ...(s.stages > 0 ? [n(s.stages, 'stage')] : []), n(s.tags, 'tag'), n(s.targets, 'target')].join(', ');
}

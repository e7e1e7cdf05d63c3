/**
 * The YAML input as TypeScript types, written to match `schemas/images.schema.json`. The `*_KEYS`
 * records list every member; TypeScript checks them against the interfaces and
 * `test/unit/spec-drift.test.ts` checks them against the schema, so the two cannot drift apart.
 */
import type { StepKind } from './model.js';

type Scalar = string | number | boolean;

export interface RawSpec {
  $schema?: string;
  version: 1;
  project?: string;
  defaults?: RawDefaults;
  registries?: Record<string, RawRegistry>;
  images: Record<string, RawImage>;
  prune?: boolean;
  notify?: string[];
}

export interface RawDefaults {
  platform?: string;
  labels?: Record<string, Scalar>;
  annotations?: Record<string, Scalar>;
  args?: Record<string, Scalar>;
  push?: string[];
  watchTags?: string[];
}

export interface RawRegistry {
  url: string;
  insecure?: boolean;
  auth?: { usernameEnv: string; passwordEnv: string };
  mirrors?: string[];
  ca?: string;
}

export interface RawImage {
  from?: string | { rootfs: string } | { archive: string };
  context?: string;
  dockerfile?: string;
  target?: string;
  args?: Record<string, Scalar>;
  steps?: Record<string, unknown>[];
  entrypoint?: string | string[];
  cmd?: string | string[];
  labels?: Record<string, Scalar>;
  annotations?: Record<string, Scalar>;
  platform?: string;
  repository?: string;
  tags?: string[];
  push?: string[];
  watchTags?: string[];
  allow?: string[];
}

/** Options of each step kind besides the kind key itself. */
export interface RawStepOptions {
  run: { env?: Record<string, Scalar>; network?: 'none' | 'host'; secrets?: { id: string; src?: string; env?: string; target?: string; required?: boolean }[] };
  copy: { to: string; chown?: string | number; chmod?: string | number; from?: string };
  add: { to: string; chown?: string | number; chmod?: string | number };
  env: object;
  workdir: object;
  user: object;
  label: object;
  expose: object;
  volume: object;
  shell: object;
  stopsignal: object;
  healthcheck: object;
}

type Keys<T> = { readonly [K in keyof Required<T>]: true };

export const SPEC_KEYS: Keys<RawSpec> = { $schema: true, version: true, project: true, defaults: true, registries: true, images: true, prune: true, notify: true };
export const DEFAULTS_KEYS: Keys<RawDefaults> = { platform: true, labels: true, annotations: true, args: true, push: true, watchTags: true };
export const REGISTRY_KEYS: Keys<RawRegistry> = { url: true, insecure: true, auth: true, mirrors: true, ca: true };
export const IMAGE_KEYS: Keys<RawImage> = {
  from: true,
  context: true,
  dockerfile: true,
  target: true,
  args: true,
  steps: true,
  entrypoint: true,
  cmd: true,
  labels: true,
  annotations: true,
  platform: true,
  repository: true,
  tags: true,
  push: true,
  watchTags: true,
  allow: true,
};
/** Per step kind, its option keys (the kind key excluded). */
export const STEP_OPTION_KEYS: { readonly [K in StepKind]: readonly (keyof RawStepOptions[K])[] } = {
  run: ['env', 'network', 'secrets'],
  copy: ['to', 'chown', 'chmod', 'from'],
  add: ['to', 'chown', 'chmod'],
  env: [],
  workdir: [],
  user: [],
  label: [],
  expose: [],
  volume: [],
  shell: [],
  stopsignal: [],
  healthcheck: [],
};

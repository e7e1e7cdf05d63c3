/**
 * The normalised spec: what `loadSpec` returns and what the planner and builder consume. Every value
 * here is deeply frozen, every path absolute, every default filled, every tag rendered. Field names
 * follow `schemas/images.schema.json` (the source of truth); `test/unit/spec-drift.test.ts` fails
 * when the two disagree.
 */
import type { ParsedReference } from '../oci/reference.js';

/** The spec file `dimg` reads when none is named. */
export const DEFAULT_SPEC_FILE = 'images.yaml';

/** A place in a source file, 1-based, for messages (`file:line:col`). */
export interface SourceLocation {
  /** The file as shown to the user (relative to the working directory when inside it). */
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

/** A registry of the spec, by name. */
export interface RegistrySpec {
  readonly name: string;
  /** `host[:port][/path-prefix]`, without a scheme. */
  readonly url: string;
  /** `host[:port]` part of `url`. */
  readonly host: string;
  /** Path prefix part of `url` (may be empty). */
  readonly prefix: string;
  readonly insecure: boolean;
  /** Names of the environment variables holding the credentials (never the values). */
  readonly auth?: { readonly usernameEnv: string; readonly passwordEnv: string };
  /** Pull mirrors, `host[:port][/prefix]`, tried in order before the registry itself. */
  readonly mirrors: readonly string[];
  /** Absolute path of a PEM CA bundle to trust for this registry. */
  readonly ca?: string;
}

/** Where an image starts. */
export type BaseSpec =
  | { readonly kind: 'scratch' }
  /** Another image of this spec (a graph edge); `key` is an ImageSpec key. */
  | { readonly kind: 'image'; readonly key: string }
  /** A registry reference, normalised (`docker.io/library/busybox:1.36`). */
  | { readonly kind: 'ref'; readonly ref: string }
  /** A filesystem directory or tarball imported as the single base layer (absolute path). */
  | { readonly kind: 'rootfs'; readonly path: string }
  /** A `docker save` or OCI archive (absolute path). */
  | { readonly kind: 'archive'; readonly path: string };

/** The source image of a `copy --from`: another image of the spec (or Dockerfile stage) or a reference. */
export type CopyFrom = { readonly kind: 'image'; readonly key: string } | { readonly kind: 'ref'; readonly ref: string };

/** A build secret mounted read-only for one RUN step, never stored in a layer. */
export interface SecretMount {
  readonly id: string;
  /** Absolute path of the file holding the secret, when the spec names one. */
  readonly src?: string;
  /** Environment variable holding the secret, when the spec names one. */
  readonly env?: string;
  /** Mount path inside the container; Docker's default `/run/secrets/ID`. */
  readonly target: string;
  /** When true (default) the build fails if no value is available. */
  readonly required: boolean;
}

/**
 * `run`: a command in a sandbox on top of the previous steps. Shell form (`form: 'shell'`, one
 * element) is run as `SHELL + [command]` with the image's shell at that point (default `/bin/sh -c`);
 * exec form is the argv itself.
 */
export interface RunStep {
  readonly kind: 'run';
  readonly form: 'shell' | 'exec';
  readonly command: readonly string[];
  /** Extra environment for this step only (Dockerfile build args land here too). */
  readonly env: Readonly<Record<string, string>>;
  readonly network: 'none' | 'host';
  readonly secrets: readonly SecretMount[];
}

/**
 * `copy`/`add`: files into the image. `src` stays relative to the context (or to the root of the
 * `from` image); the builder resolves and checks them. `add` also unpacks local tar archives.
 */
export interface CopyStep {
  readonly kind: 'copy' | 'add';
  readonly src: readonly string[];
  /** Destination; a trailing `/` (or several sources) means a directory. Relative to WORKDIR. */
  readonly to: string;
  /** `user[:group]` as names or ids, as Docker's `--chown`. */
  readonly chown?: string;
  /** Octal mode string such as `0755`, as Docker's `--chmod`. */
  readonly chmod?: string;
  /** Copy out of another image instead of the context (copy only). */
  readonly from?: CopyFrom;
}

/**
 * Environment variables set from here on. A value may contain `${NAME}` references the Dockerfile
 * frontend could not resolve (the base image's variables, e.g. `PATH=/opt/bin:${PATH}`): the
 * builder expands them against the config's environment at this step, as Docker does.
 */
export interface EnvStep { readonly kind: 'env'; readonly vars: Readonly<Record<string, string>> }
export interface WorkdirStep { readonly kind: 'workdir'; readonly path: string }
export interface UserStep { readonly kind: 'user'; readonly user: string }
export interface LabelStep { readonly kind: 'label'; readonly labels: Readonly<Record<string, string>> }
/** Ports as the config stores them: `8080/tcp`. */
export interface ExposeStep { readonly kind: 'expose'; readonly ports: readonly string[] }
export interface VolumeStep { readonly kind: 'volume'; readonly paths: readonly string[] }
export interface ShellStep { readonly kind: 'shell'; readonly argv: readonly string[] }
export interface StopSignalStep { readonly kind: 'stopsignal'; readonly signal: string }
/**
 * A health check in the config's terms: `test` is `['NONE']`, `['CMD', ...]` or
 * `['CMD-SHELL', cmd]`; durations in nanoseconds, 0 meaning the runtime default.
 */
export interface HealthcheckStep {
  readonly kind: 'healthcheck';
  readonly test: readonly string[];
  readonly interval: number;
  readonly timeout: number;
  readonly startPeriod: number;
  readonly startInterval: number;
  readonly retries: number;
}

/** One canonical build step: one layer (run, copy, add) or one config change (the rest). */
export type Step =
  | RunStep
  | CopyStep
  | EnvStep
  | WorkdirStep
  | UserStep
  | LabelStep
  | ExposeStep
  | VolumeStep
  | ShellStep
  | StopSignalStep
  | HealthcheckStep;

/** The step kinds, in the schema's order (the drift test checks this against the schema). */
export const STEP_KINDS = ['run', 'copy', 'add', 'env', 'workdir', 'user', 'label', 'expose', 'volume', 'shell', 'stopsignal', 'healthcheck'] as const;
export type StepKind = (typeof STEP_KINDS)[number];

/** A destination of an image: a spec registry and the full reference `URL/REPOSITORY:TAG`. */
export interface TargetSpec {
  /** The `registries` key. */
  readonly registry: string;
  /** The full reference with tag, parsed once at load; `String(ref)` is `127.0.0.1:5000/shop/web:1.4.2`. */
  readonly ref: ParsedReference;
}

/** One image to build (or mirror), normalised. */
export interface ImageSpec {
  /** The `images` key; Dockerfile stages get `KEY~STAGE` (see docs/commands/spec.md). */
  readonly key: string;
  readonly from: BaseSpec;
  /** Absolute context directory; undefined when the image has none (no copy/add from context). */
  readonly context?: string;
  /** Absolute path of the Dockerfile this image was compiled from, if any. */
  readonly dockerfile?: string;
  readonly steps: readonly Step[];
  /**
   * Image-level config; undefined means "inherit from the base". As Docker does, the builder
   * resets an inherited `cmd` when this image sets `entrypoint` but not `cmd`.
   */
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** `defaults.labels` merged under the image's own labels (applied after the steps). */
  readonly labels: Readonly<Record<string, string>>;
  /** Manifest annotations (`defaults.annotations` merged under the image's own). */
  readonly annotations: Readonly<Record<string, string>>;
  /** `os/arch[/variant]`, or undefined for the host's platform. */
  readonly platform?: string;
  /** Repository path without registry (`shop/web`); defaults to the key. */
  readonly repository: string;
  /** Rendered tags (templating done, grammar checked). Empty for intermediate stages. */
  readonly tags: readonly string[];
  /** Every registry destination: one per tag × `push` registry. */
  readonly targets: readonly TargetSpec[];
  /** Names in the local store, normalised (`docker.io/shop/web:1.4.2`): one per tag. */
  readonly localRefs: readonly string[];
  /** Registry names this image is pushed to. */
  readonly push: readonly string[];
  /** Tag patterns (`*` wildcards) `dimg watch --push` may write; absent means DEFAULT_WATCH_TAGS. */
  readonly watchTags?: readonly string[];
  /** True for a Dockerfile stage that only feeds another image (never tagged or pushed). */
  readonly intermediate: boolean;
  /** Where the image is declared: its key in the YAML, or its FROM line in a Dockerfile. */
  readonly location: SourceLocation;
}

/** The whole normalised spec. */
export interface Spec {
  /** Absolute path of the spec file. */
  readonly file: string;
  /** Absolute directory of the spec file; relative paths in it resolve here. */
  readonly dir: string;
  readonly version: 1;
  /** Ownership name for prune; defaults to the spec directory's base name. */
  readonly project: string;
  /** Whether `project:` is written in the file (prune needs that: directory names collide). */
  readonly projectDeclared?: boolean;
  readonly defaults: {
    readonly platform?: string;
    readonly labels: Readonly<Record<string, string>>;
    readonly annotations: Readonly<Record<string, string>>;
    readonly args: Readonly<Record<string, string>>;
    readonly push: readonly string[];
    readonly watchTags: readonly string[];
  };
  readonly registries: Readonly<Record<string, RegistrySpec>>;
  /** Images in dependency order: every image comes after the images it builds on or copies from. */
  readonly images: readonly ImageSpec[];
  readonly prune: boolean;
  readonly notify: readonly string[];
}

/**
 * The tags `dimg watch --push` writes when the spec names none: development tags only, so a dev loop
 * never overwrites a release tag (`1.4.2`, `stable`, `latest`) that `dimg apply` owns.
 */
export const DEFAULT_WATCH_TAGS: readonly string[] = ['dev', '*-dev', 'dev-*'];

/** Whether `tag` matches one of `patterns` (`*` matches any run of characters, nothing else is special). */
export function matchesTagPattern(tag: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => {
    const parts = p.split('*');
    if (parts.length === 1) return p === tag;
    // Literal pieces in order: first at the start, last at the end, the others greedily between.
    if (!tag.startsWith(parts[0]!) || !tag.endsWith(parts[parts.length - 1]!)) return false;
    let at = parts[0]!.length;
    const end = tag.length - parts[parts.length - 1]!.length;
    for (const piece of parts.slice(1, -1)) {
      const i = tag.indexOf(piece, at);
      if (i < 0 || i + piece.length > end) return false;
      at = i + piece.length;
    }
    return at <= end;
  });
}

/** Deep-freezes a plain data structure in place and returns it. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value as object)) deepFreeze(v);
  }
  return value;
}

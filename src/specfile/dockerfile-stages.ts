/**
 * The stage graph of a Dockerfile, part of the compile stage of the frontend: the stages as FROM
 * opens them, how `FROM` and `COPY --from` names resolve (an earlier stage, then `scratch`, then an
 * image of the spec, then a registry reference, as Docker resolves them), which stage `--target`
 * selects, and which stages the selected one needs, keyed as images (`KEY~NAME` or `KEY~INDEX`).
 */
import { parseReference } from '../oci/reference.js';
import { isDimgError } from '../errors.js';
import type { BaseSpec, CopyFrom, Step } from './model.js';
import { didYouMean } from './problems.js';

/** One compiled stage, as the spec loader and `dimg image build` consume it. */
export interface DockerfileStage {
  readonly key: string;
  /** The `AS` name, when given. */
  readonly name?: string;
  readonly index: number;
  readonly from: BaseSpec;
  readonly steps: readonly Step[];
  readonly entrypoint?: readonly string[];
  readonly cmd?: readonly string[];
  /** 1-based line of the stage's FROM. */
  readonly line: number;
  /** 1-based line of the instruction each step came from (parallel to `steps`). */
  readonly stepLines: readonly number[];
  /** Keys of images this stage builds on or copies from (stages or spec images). */
  readonly deps: readonly string[];
  /** True for the stage that is the requested image. */
  readonly final: boolean;
}

/** A stage while its instructions are compiled into it. */
export interface StageState {
  /** The `AS` name, lower-cased. */
  readonly name?: string;
  readonly index: number;
  /** 1-based line of the stage's FROM. */
  readonly line: number;
  readonly from: BaseSpec;
  /** Keys of the images (stages or spec images) the stage builds on or copies from. */
  readonly deps: Set<string>;
  readonly steps: Step[];
  readonly stepLines: number[];
  entrypoint?: string[];
  cmd?: string[];
  /** The SHELL that CMD and ENTRYPOINT in shell form run through. */
  shell: readonly string[];
}

/** A resolved `FROM` name: the base, and the image key it depends on when it is one of ours. */
export interface ResolvedName {
  readonly base: BaseSpec;
  readonly dep?: string;
}

/** The stages of one Dockerfile compiled as the image `key`, in file order. */
export class StageGraph {
  readonly stages: StageState[] = [];

  /**
   * @param key the key of the resulting image; other stages become `KEY~NAME` or `KEY~INDEX`.
   * @param imageKeys images of the surrounding spec that FROM and COPY --from may name.
   */
  constructor(
    private readonly key: string,
    private readonly imageKeys?: ReadonlySet<string>,
  ) {}

  /** Whether an earlier stage already has this (lower-cased) name. */
  hasName(name: string): boolean {
    return this.stages.some((s) => s.name === name);
  }

  /** Opens a new stage (at FROM) and returns it. */
  open(s: { name?: string; line: number; from: BaseSpec; dep?: string; shell: readonly string[] }): StageState {
    const stage: StageState = { name: s.name, index: this.stages.length, line: s.line, from: s.from, deps: new Set(s.dep ? [s.dep] : []), steps: [], stepLines: [], shell: s.shell };
    this.stages.push(stage);
    return stage;
  }

  /** Resolves a FROM name: an earlier stage, `scratch`, a spec image, else a reference; undefined when it is none. */
  resolve(name: string): ResolvedName | undefined {
    const byName = this.stages.find((s) => s.name === name.toLowerCase());
    if (byName) return { base: { kind: 'image', key: this.keyOf(byName) }, dep: this.keyOf(byName) };
    if (name === 'scratch') return { base: { kind: 'scratch' } };
    if (this.imageKeys?.has(name)) return { base: { kind: 'image', key: name }, dep: name };
    try {
      return { base: { kind: 'ref', ref: parseReference(name).toString() } };
    } catch (e) {
      if (isDimgError(e, 'REFERENCE_INVALID')) return undefined;
      throw e;
    }
  }

  /**
   * Resolves `COPY --from=NAME` in stage `current`: an earlier stage by index, else as FROM does;
   * undefined for `scratch` or a name that is nothing.
   */
  resolveCopyFrom(name: string, current: StageState): CopyFrom | undefined {
    const byIndex = /^[0-9]+$/.test(name) ? this.stages[Number(name)] : undefined;
    if (byIndex && byIndex !== current) return { kind: 'image', key: this.keyOf(byIndex) };
    const r = this.resolve(name);
    if (!r || r.base.kind === 'scratch') return undefined;
    return r.base as CopyFrom;
  }

  /** The stage to build: `target` by name (case-insensitive), else the last; or why there is none. */
  select(target: string | undefined): StageState | { error: string } | undefined {
    if (target === undefined) return this.stages.at(-1);
    const found = this.stages.find((s) => s.name === target.toLowerCase());
    if (found) return found;
    return { error: `target stage "${target}" is not defined${didYouMean(target, this.stages.flatMap((s) => (s.name ? [s.name] : [])))}` };
  }

  /** The stages `final` needs, in file order, as images; `final` becomes the image `key` itself. */
  needed(final: StageState): DockerfileStage[] {
    const need = this.closure(final);
    const finalKey = this.keyOf(final);
    const rename = (k: string) => (k === finalKey ? this.key : k);
    return this.stages
      .filter((s) => need.has(s))
      .map((s) => ({
        key: s === final ? this.key : this.keyOf(s),
        name: s.name,
        index: s.index,
        from: s.from.kind === 'image' ? { kind: 'image', key: rename(s.from.key) } : s.from,
        steps: s.steps.map((step) => (step.kind === 'copy' && step.from?.kind === 'image' ? { ...step, from: { kind: 'image', key: rename(step.from.key) } } : step)),
        entrypoint: s.entrypoint,
        cmd: s.cmd,
        line: s.line,
        stepLines: s.stepLines,
        deps: [...s.deps].map(rename),
        final: s === final,
      }));
  }

  /** `final` and every stage it depends on, directly or not. */
  private closure(final: StageState): Set<StageState> {
    const byKey = new Map(this.stages.map((s) => [this.keyOf(s), s]));
    const need = new Set<StageState>([final]);
    const queue = [final];
    while (queue.length > 0) {
      for (const d of queue.pop()!.deps) {
        const s = byKey.get(d);
        if (s && !need.has(s)) {
          need.add(s);
          queue.push(s);
        }
      }
    }
    return need;
  }

  private keyOf(st: StageState): string {
    return `${this.key}~${st.name ?? st.index}`;
  }
}

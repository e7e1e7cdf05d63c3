/**
 * The Dockerfile frontend: compiles a Dockerfile into the same canonical steps as the YAML, one
 * stage per FROM. The final stage (or `target`) becomes the image itself; every earlier stage it
 * needs (as its base or through `COPY --from`) becomes an intermediate image keyed `KEY~STAGE`
 * (`KEY~0`, `KEY~1`… for unnamed stages), so the builder builds stages like any other image and
 * caches them the same way. Stages nothing needs are dropped, as BuildKit does.
 *
 * Each instruction goes through four stages, each a module of its own, as in BuildKit:
 * `dockerfile-parse.ts` (text → raw instructions with their lines), `dockerfile-instructions.ts`
 * (→ typed instructions, flags checked), `dockerfile-expand.ts` (ARG/ENV substitution) and
 * `dockerfile-compile.ts` with `dockerfile-stages.ts` (→ steps, stage graph, `--target`).
 */
import { parseDockerfile, type Instruction } from './dockerfile-parse.js';
import { checkKeywordAndFlags, typeInstruction, type TypedInstruction } from './dockerfile-instructions.js';
import { expandInstruction, platformArgs, Scope } from './dockerfile-expand.js';
import { compileArg, compileFrom, compileInstruction, type CompileContext } from './dockerfile-compile.js';
import { StageGraph, type DockerfileStage, type StageState } from './dockerfile-stages.js';
import { SourceText } from './source-text.js';
import type { Problem } from './problems.js';

export type { DockerfileStage } from './dockerfile-stages.js';

/** What `compileDockerfile` needs. */
export interface CompileDockerfileOptions {
  /** The Dockerfile's text. */
  readonly text: string;
  /** The Dockerfile as shown in messages. */
  readonly file: string;
  /** Key of the resulting image; intermediate stages are `KEY~STAGE`. */
  readonly key: string;
  /** Build args (`args:` / `--build-arg`), overriding ARG defaults. */
  readonly args?: Readonly<Record<string, string>>;
  /** Stage to build; default the last. */
  readonly target?: string;
  /** `os/arch[/variant]` for the automatic TARGETPLATFORM/TARGETOS/TARGETARCH/TARGETVARIANT args. */
  readonly platform?: string;
  /**
   * Entitlements granted by the person building, as BuildKit's `--allow`: `network.host` lets
   * `RUN --network=host` reach the host's network. A Dockerfile cannot grant itself one.
   */
  readonly allow?: readonly string[];
  /** Images of the surrounding spec that FROM and COPY --from may name. */
  readonly imageKeys?: ReadonlySet<string>;
}

/** The entitlements a build can grant (`--allow`, `allow:`), as BuildKit's. */
export const ENTITLEMENTS: readonly string[] = ['network.host'];

/** The result: the needed stages in build order (the final one last) and every problem found. */
export interface CompiledDockerfile {
  readonly stages: readonly DockerfileStage[];
  readonly problems: readonly Problem[];
}

/**
 * Compiles a Dockerfile. Never throws for user errors: they come back as problems located at
 * FILE:LINE:COL, in the order of the instructions they belong to.
 */
export function compileDockerfile(opts: CompileDockerfileOptions): CompiledDockerfile {
  const src = new SourceText(opts.file, opts.text);
  const parsed = parseDockerfile(opts.text);
  const problems: Problem[] = parsed.problems.map((p) => src.problemAtLine(p.line, p.col, p.message));
  const scope = new Scope(opts.args ?? {}, platformArgs(opts.platform));
  const graph = new StageGraph(opts.key, opts.imageKeys);
  const allow = new Set(opts.allow ?? []);
  let stage: StageState | undefined;
  for (const inst of parsed.instructions) {
    const fail = (message: string) => problems.push(src.problemAtLine(inst.line, 1, `${inst.keyword}: ${message}`, inst.keyword.length));
    stage = compileOne(inst, stage, parsed.escape, { graph, scope, fail, allow });
  }
  if (graph.stages.length === 0 && problems.length === 0) problems.push(src.problemAtLine(1, 1, 'the Dockerfile has no FROM instruction'));
  const final = graph.select(opts.target);
  if (final && 'error' in final) problems.push(src.problemAtLine(1, 1, final.error));
  if (!final || 'error' in final) return { stages: [], problems };
  return { stages: graph.needed(final), problems };
}

/** Takes one raw instruction through the typed, expansion and compile stages; returns the current stage. */
function compileOne(inst: Instruction, stage: StageState | undefined, escape: string, ctx: CompileContext): StageState | undefined {
  const typed = typedOrProblem(inst, stage !== undefined, escape);
  if (typeof typed === 'string') {
    ctx.fail(typed);
    return stage;
  }
  // FROM sees only the global ARGs (and the automatic platform ones).
  if (typed.kind === 'FROM') ctx.scope.leaveStage();
  const e = expandInstruction(typed, ctx.scope.vars(), escape, ctx.fail);
  if (e.kind === 'FROM') return compileFrom(e, ctx);
  if (e.kind === 'ARG') compileArg(e, ctx);
  else if (stage) compileInstruction(e, stage, ctx);
  return stage;
}

/** The typed instruction, or the first problem that keeps it from being compiled (in Docker's order). */
function typedOrProblem(inst: Instruction, inStage: boolean, escape: string): TypedInstruction | string {
  const bad = checkKeywordAndFlags(inst);
  if (bad) return bad;
  if (!inStage && inst.keyword !== 'ARG' && inst.keyword !== 'FROM') return 'only ARG may come before the first FROM';
  const typed = typeInstruction(inst, escape);
  return 'error' in typed ? typed.error : typed;
}

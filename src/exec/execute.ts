/**
 * Executes a plan: runs its actions in dependency order with bounded parallelism, through ports the
 * caller provides (builder, pusher, registry writer), emitting events for the reporter. An action
 * starts only when every action it depends on has succeeded; when one fails, its dependants are
 * skipped, independent actions still run, and the result lists every failure.
 */
import pLimit from 'p-limit';
import type { Digest } from '../oci/digest.js';
import type { Action, BuildAction, DeleteAction, Plan, PushAction, RetagAction } from '../plan/types.js';

/**
 * What an action produced: the manifest digest it built (the local store's) or wrote under its tag
 * (the registry's, read back), or deleted.
 */
export interface ActionOutput {
  digest?: Digest;
}

/** What the executor needs from the outside world; one method per action kind. */
export interface ExecutorPorts {
  build(action: BuildAction, signal: AbortSignal): Promise<ActionOutput | void>;
  push(action: PushAction, signal: AbortSignal): Promise<ActionOutput | void>;
  retag(action: RetagAction, signal: AbortSignal): Promise<ActionOutput | void>;
  delete(action: DeleteAction, signal: AbortSignal): Promise<ActionOutput | void>;
}

/** Progress events, in the order they happen. */
export type ExecEvent =
  | { type: 'start'; action: Action; at: number }
  | { type: 'done'; action: Action; at: number; ms: number; output: ActionOutput }
  | { type: 'failed'; action: Action; at: number; ms: number; error: unknown }
  | { type: 'skipped'; action: Action; at: number; because: string };

/** The outcome of an execution. */
export interface ExecResult {
  done: Action[];
  /** What each done action produced, by action id. */
  outputs: Map<string, ActionOutput>;
  failed: { action: Action; error: unknown }[];
  skipped: Action[];
  ms: number;
}

/** Options: parallelism (default 4), an abort signal, and an event listener. */
export interface ExecOptions {
  parallelism?: number;
  signal?: AbortSignal;
  onEvent?: (e: ExecEvent) => void;
}

/** Runs every action of `plan` that changes something; `unchanged` actions are skipped silently. */
export async function executePlan(plan: Pick<Plan, 'actions'>, ports: ExecutorPorts, opts: ExecOptions = {}): Promise<ExecResult> {
  const started = Date.now();
  const limit = pLimit(Math.max(1, opts.parallelism ?? 4));
  const signal = opts.signal ?? new AbortController().signal;
  const emit = opts.onEvent ?? (() => {});
  const actions = plan.actions.filter((a) => a.kind !== 'unchanged');
  const byId = new Map(actions.map((a) => [a.id, a]));
  const outcome = new Map<string, Promise<boolean>>();
  const result: ExecResult = { done: [], outputs: new Map(), failed: [], skipped: [], ms: 0 };

  const runOne = (action: Action): Promise<boolean> => {
    const existing = outcome.get(action.id);
    if (existing) return existing;
    const p = (async () => {
      const deps = await Promise.all(action.dependsOn.filter((d) => byId.has(d)).map((d) => runOne(byId.get(d)!)));
      if (deps.some((ok) => !ok) || signal.aborted) {
        result.skipped.push(action);
        emit({ type: 'skipped', action, at: Date.now(), because: signal.aborted ? 'cancelled' : 'a step it depends on failed' });
        return false;
      }
      return limit(async () => {
        if (signal.aborted) {
          result.skipped.push(action);
          emit({ type: 'skipped', action, at: Date.now(), because: 'cancelled' });
          return false;
        }
        const t0 = Date.now();
        emit({ type: 'start', action, at: t0 });
        try {
          const output = (await dispatch(action, ports, signal)) ?? {};
          result.done.push(action);
          result.outputs.set(action.id, output);
          emit({ type: 'done', action, at: Date.now(), ms: Date.now() - t0, output });
          return true;
        } catch (error) {
          result.failed.push({ action, error });
          emit({ type: 'failed', action, at: Date.now(), ms: Date.now() - t0, error });
          return false;
        }
      });
    })();
    outcome.set(action.id, p);
    return p;
  };

  await Promise.all(actions.map(runOne));
  result.ms = Date.now() - started;
  return result;
}

function dispatch(action: Action, ports: ExecutorPorts, signal: AbortSignal): Promise<ActionOutput | void> {
  switch (action.kind) {
    case 'build':
      return ports.build(action, signal);
    case 'push':
      return ports.push(action, signal);
    case 'retag':
      return ports.retag(action, signal);
    case 'delete':
      return ports.delete(action, signal);
    case 'unchanged':
      return Promise.resolve();
  }
}

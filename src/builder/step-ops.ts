/**
 * The one table of step operations: every step kind of the spec model (specfile/model.ts `Step`)
 * maps to its operation (step-op.ts). Keying (keys.ts) and building (builder.ts) look a step's
 * operation up here instead of switching on its kind.
 */
import type { Step } from '../specfile/model.js';
import { configOp } from './config-steps.js';
import { copyOp } from './copy-op.js';
import { runOp } from './run-op.js';
import type { StepOp } from './step-op.js';

type OpTable = { [K in Step['kind']]: StepOp<Extract<Step, { kind: K }>> };

const OPS: OpTable = {
  run: runOp,
  copy: copyOp,
  add: copyOp,
  env: configOp('env'),
  workdir: configOp('workdir'),
  user: configOp('user'),
  label: configOp('label'),
  expose: configOp('expose'),
  volume: configOp('volume'),
  shell: configOp('shell'),
  stopsignal: configOp('stopsignal'),
  healthcheck: configOp('healthcheck'),
};

/** The operation of `step`'s kind. */
export function stepOp<S extends Step>(step: S): StepOp<S> {
  return OPS[step.kind] as unknown as StepOp<S>;
}

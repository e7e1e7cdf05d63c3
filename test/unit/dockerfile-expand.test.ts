/** Stage 3 of the Dockerfile frontend alone: which variables are visible, and their substitution. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandInstruction, platformArgs, Scope } from '../../src/specfile/dockerfile-expand.js';
import type { TypedInstruction } from '../../src/specfile/dockerfile-instructions.js';

const vars = (entries: Record<string, string>) => new Map(Object.entries(entries));

/** Expands one instruction, collecting the messages it reports. */
function expand(inst: TypedInstruction, v: Record<string, string>) {
  const errors: string[] = [];
  const out = expandInstruction(inst, vars(v), '\\', (m) => errors.push(m));
  return { out, errors };
}

test('Scope: global ARGs and automatic args before FROM, only declared ARGs and ENVs inside a stage', () => {
  const scope = new Scope({ V: 'given' }, platformArgs('linux/arm64/v8'));
  scope.declareArg('V', '1');
  scope.declareArg('G', 'g');
  scope.declareArg('N', undefined);
  assert.deepEqual(Object.fromEntries(scope.vars()), { TARGETPLATFORM: 'linux/arm64/v8', TARGETOS: 'linux', TARGETARCH: 'arm64', TARGETVARIANT: 'v8', BUILDPLATFORM: 'linux/arm64/v8', BUILDOS: 'linux', BUILDARCH: 'arm64', BUILDVARIANT: 'v8', V: 'given', G: 'g' });
  assert.deepEqual(scope.runEnv(), {}, 'RUN outside a stage sees no args');

  scope.enterStage();
  assert.deepEqual(Object.fromEntries(scope.vars()), {}, 'a stage starts with nothing');
  scope.declareArg('G', undefined); // re-imports the global value
  scope.declareArg('TARGETARCH', undefined); // imports the automatic one
  scope.declareArg('L', 'local');
  scope.declareArg('N', undefined); // declared, no value anywhere
  scope.setEnv('L', 'env wins');
  assert.deepEqual(Object.fromEntries(scope.vars()), { G: 'g', TARGETARCH: 'arm64', L: 'env wins' });
  assert.deepEqual(scope.runEnv(), { G: 'g', TARGETARCH: 'arm64' }, 'an ENV of the same name hides the arg from RUN');

  scope.leaveStage();
  assert.equal(scope.vars().get('V'), 'given');
  assert.equal(scope.vars().has('L'), false);
  assert.deepEqual(platformArgs(undefined), new Map());
});

test('expansion substitutes words per instruction; ENV keeps unknown variables, LABEL empties them', () => {
  const v = { A: 'x', E: '' };
  assert.deepEqual(expand({ kind: 'FROM', line: 3, args: '${A}:1 $E AS b' }, v).out, { kind: 'FROM', line: 3, words: ['x:1', 'AS', 'b'] });
  assert.deepEqual(expand({ kind: 'ARG', line: 1, decls: [{ name: 'B', value: '$A-y' }, { name: 'C' }] }, v).out, { kind: 'ARG', line: 1, decls: [['B', 'x-y'], ['C', undefined]] });
  assert.deepEqual(expand({ kind: 'ENV', line: 1, legacy: false, pairs: [['P', '/a:$PATH:$A']] }, v).out, { kind: 'ENV', line: 1, pairs: [['P', '/a:${PATH}:x']] });
  assert.deepEqual(expand({ kind: 'LABEL', line: 1, legacy: false, pairs: [['"k $A"', '$PATH$A']] }, v).out, { kind: 'LABEL', line: 1, pairs: [['k x', 'x']] });
  assert.deepEqual(expand({ kind: 'ENV', line: 1, legacy: true, pairs: [['$N', 'a  $A']] }, v).out, { kind: 'ENV', line: 1, pairs: [['$N', 'a  x']] }, 'a legacy name is literal');
  assert.deepEqual(expand({ kind: 'COPY', line: 1, paths: { shell: '$A "b c" $E /d' }, from: '$A', chown: '${U:-1}', chmod: '755' }, v).out, { kind: 'COPY', line: 1, paths: ['x', 'b c', '/d'], from: 'x', chown: '1', chmod: '755' });
  assert.deepEqual(expand({ kind: 'VOLUME', line: 1, paths: { json: ['$A', '/v'] } }, v).out, { kind: 'VOLUME', line: 1, words: ['x', '/v'] });
  assert.deepEqual(expand({ kind: 'EXPOSE', line: 1, ports: '80 ${A:+81}' }, v).out, { kind: 'EXPOSE', line: 1, words: ['80', '81'] });
  assert.deepEqual(expand({ kind: 'USER', line: 1, value: '$A:${G:-users}' }, v).out, { kind: 'USER', line: 1, value: 'x:users' });
  const run: TypedInstruction = { kind: 'RUN', line: 1, form: { shell: 'echo $A' }, network: 'none', secrets: [] };
  assert.equal(expand(run, v).out, run, 'RUN is left to the shell');
});

test('a failed expansion is reported and falls back as Docker did', () => {
  const bad = expand({ kind: 'WORKDIR', line: 1, value: '${A' }, {});
  assert.deepEqual(bad, { out: { kind: 'WORKDIR', line: 1, value: undefined }, errors: ['unterminated "${" in "${A"'] });
  assert.deepEqual(expand({ kind: 'MAINTAINER', line: 1, value: '${X:?who}' }, {}), { out: { kind: 'MAINTAINER', line: 1, value: '${X:?who}' }, errors: ['X: who'] });
  assert.deepEqual(expand({ kind: 'ENV', line: 1, legacy: false, pairs: [['A', '${B?}']] }, {}), { out: { kind: 'ENV', line: 1, pairs: [['A', '']] }, errors: ['B: is not set'] });
  assert.deepEqual(expand({ kind: 'FROM', line: 1, args: '"a' }, {}), { out: { kind: 'FROM', line: 1, words: [] }, errors: ['unterminated double quote'] });
  assert.deepEqual(expand({ kind: 'COPY', line: 1, paths: { json: ['${', '/d'] } }, {}).out, { kind: 'COPY', line: 1, paths: ['', '/d'], from: undefined, chown: undefined });
});

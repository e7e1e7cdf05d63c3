/** Stage 4 of the Dockerfile frontend alone: expanded instructions → steps, the stage graph, --target. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileArg, compileFrom, compileInstruction, type CompileContext } from '../../src/specfile/dockerfile-compile.js';
import { Scope } from '../../src/specfile/dockerfile-expand.js';
import { StageGraph } from '../../src/specfile/dockerfile-stages.js';

function context(imageKeys?: ReadonlySet<string>): CompileContext & { errors: string[] } {
  const errors: string[] = [];
  return { graph: new StageGraph('app', imageKeys), scope: new Scope({}, new Map()), fail: (m) => errors.push(m), allow: new Set(), errors };
}

test('FROM opens stages, resolving names to stages, scratch, spec images or references', () => {
  const ctx = context(new Set(['base']));
  const a = compileFrom({ kind: 'FROM', line: 1, words: ['busybox:1', 'AS', 'Build'] }, ctx);
  assert.deepEqual([a.name, a.index, a.from, [...a.deps]], ['build', 0, { kind: 'ref', ref: 'docker.io/library/busybox:1' }, []]);
  const b = compileFrom({ kind: 'FROM', line: 2, words: ['BUILD'] }, ctx);
  assert.deepEqual([b.from, [...b.deps]], [{ kind: 'image', key: 'app~build' }, ['app~build']]);
  const c = compileFrom({ kind: 'FROM', line: 3, words: ['base', 'as', 'c'] }, ctx);
  assert.deepEqual([c.from, [...c.deps]], [{ kind: 'image', key: 'base' }, ['base']]);
  assert.deepEqual(compileFrom({ kind: 'FROM', line: 4, words: ['scratch'] }, ctx).from, { kind: 'scratch' });
  assert.deepEqual(ctx.errors, []);

  compileFrom({ kind: 'FROM', line: 5, words: ['a', 'b'] }, ctx);
  compileFrom({ kind: 'FROM', line: 6, words: ['busybox', 'AS', 'build'] }, ctx);
  compileFrom({ kind: 'FROM', line: 7, words: ['Bad:Ref', 'AS', '9x'] }, ctx);
  assert.deepEqual(ctx.errors, ['expected "FROM IMAGE [AS NAME]"', 'duplicate stage name "build"', 'invalid stage name "9x" (letters, digits, ".", "_" and "-", starting with a letter)', '"Bad:Ref" is not a valid image reference or stage name']);
  assert.equal(ctx.graph.stages.length, 7, 'a broken FROM still opens a stage, so what follows is checked');
});

test('instructions become steps on their stage, with their lines', () => {
  const ctx = context();
  const st = compileFrom({ kind: 'FROM', line: 1, words: ['busybox:1'] }, ctx);
  compileArg({ kind: 'ARG', line: 2, decls: [['V', '1']] }, ctx);
  compileInstruction({ kind: 'ENV', line: 3, pairs: [['V', 'env'], ['P', '/p']] }, st, ctx);
  compileArg({ kind: 'ARG', line: 4, decls: [['W', '2']] }, ctx);
  compileInstruction({ kind: 'RUN', line: 5, form: { shell: 'echo $V' }, network: 'none', secrets: [] }, st, ctx);
  compileInstruction({ kind: 'SHELL', line: 6, argv: ['/bin/ash', '-c'] }, st, ctx);
  compileInstruction({ kind: 'CMD', line: 7, form: { shell: 'run it' } }, st, ctx);
  compileInstruction({ kind: 'ENTRYPOINT', line: 8, form: { json: ['/e'] } }, st, ctx);
  compileInstruction({ kind: 'EXPOSE', line: 9, words: ['80', '53/UDP'] }, st, ctx);
  compileInstruction({ kind: 'COPY', line: 10, paths: ['a', 'b', '/d/'], chown: '1:1', chmod: '644' }, st, ctx);
  compileInstruction({ kind: 'MAINTAINER', line: 11, value: 'me' }, st, ctx);
  compileInstruction({ kind: 'HEALTHCHECK', line: 12, test: ['NONE'] }, st, ctx);
  assert.deepEqual(ctx.errors, []);
  assert.deepEqual(st.steps, [
    { kind: 'env', vars: { V: 'env', P: '/p' } },
    { kind: 'run', form: 'shell', command: ['echo $V'], env: { W: '2' }, network: 'none', secrets: [] },
    { kind: 'shell', argv: ['/bin/ash', '-c'] },
    { kind: 'expose', ports: ['80/tcp', '53/udp'] },
    { kind: 'copy', src: ['a', 'b'], to: '/d/', chown: '1:1', chmod: '0644', from: undefined },
    { kind: 'label', labels: { maintainer: 'me' } },
    { kind: 'healthcheck', test: ['NONE'], interval: 0, timeout: 0, startPeriod: 0, startInterval: 0, retries: 0 },
  ]);
  assert.deepEqual(st.stepLines, [3, 5, 6, 9, 10, 11, 12]);
  assert.deepEqual([st.cmd, st.entrypoint], [['/bin/ash', '-c', 'run it'], ['/e']]);
});

test('checks on expanded values: COPY sources, ADD URLs, --from, --chmod, ports, paths, values', () => {
  const ctx = context();
  const st = compileFrom({ kind: 'FROM', line: 1, words: ['busybox:1'] }, ctx);
  compileInstruction({ kind: 'COPY', line: 2, paths: ['only'] }, st, ctx);
  compileInstruction({ kind: 'ADD', line: 3, paths: ['https://x/a', '/'] }, st, ctx);
  compileInstruction({ kind: 'COPY', line: 4, paths: ['a', 'b'], from: 'scratch' }, st, ctx);
  compileInstruction({ kind: 'COPY', line: 5, paths: ['a', 'b'], chmod: '888' }, st, ctx);
  compileInstruction({ kind: 'EXPOSE', line: 6, words: ['80/http'] }, st, ctx);
  compileInstruction({ kind: 'EXPOSE', line: 7, words: [] }, st, ctx);
  compileInstruction({ kind: 'VOLUME', line: 8, words: ['/a', ''] }, st, ctx);
  compileInstruction({ kind: 'WORKDIR', line: 9, value: '' }, st, ctx);
  compileInstruction({ kind: 'COPY', line: 10, paths: undefined }, st, ctx);
  assert.deepEqual(ctx.errors, [
    'needs at least one source and a destination',
    'ADD of a URL or git repository (https://x/a) is not supported; download it in a RUN step or put it in the context',
    '--from=scratch names no earlier stage and is not a valid image reference',
    '--chmod=888 is not an octal mode such as 0755',
    '"80/http" is not a port such as 8080, 8080/udp or 8000-8010/tcp',
    'needs at least one port',
    'needs at least one path',
    'needs a value',
  ]);
  assert.deepEqual(st.steps, []);
});

test('the stage graph: COPY --from by index or name, --target, and only the needed stages, renamed', () => {
  const ctx = context();
  const a = compileFrom({ kind: 'FROM', line: 1, words: ['busybox:1', 'AS', 'a'] }, ctx);
  compileFrom({ kind: 'FROM', line: 2, words: ['busybox:1', 'AS', 'unused'] }, ctx);
  const c = compileFrom({ kind: 'FROM', line: 3, words: ['a'] }, ctx);
  compileInstruction({ kind: 'COPY', line: 4, paths: ['/x', '/x'], from: '0' }, c, ctx);
  compileInstruction({ kind: 'COPY', line: 5, paths: ['/y', '/y'], from: 'alpine:3' }, c, ctx);
  const d = compileFrom({ kind: 'FROM', line: 6, words: ['scratch', 'AS', 'd'] }, ctx);
  compileInstruction({ kind: 'COPY', line: 7, paths: ['/z', '/z'], from: '2' }, d, ctx);
  assert.deepEqual(ctx.errors, []);
  assert.equal(ctx.graph.select(undefined), d);
  assert.equal(ctx.graph.select('A'), a);
  assert.deepEqual(ctx.graph.select('b'), { error: 'target stage "b" is not defined; did you mean "a"?' });

  const stages = ctx.graph.needed(c);
  assert.deepEqual(stages.map((s) => [s.key, s.final, s.deps]), [['app~a', false, []], ['app', true, ['app~a']]]);
  assert.deepEqual(stages[1]!.from, { kind: 'image', key: 'app~a' });
  assert.deepEqual(stages[1]!.steps.map((s) => s.kind === 'copy' && s.from), [{ kind: 'image', key: 'app~a' }, { kind: 'ref', ref: 'docker.io/library/alpine:3' }]);
  const all = ctx.graph.needed(d);
  assert.deepEqual(all.map((s) => s.key), ['app~a', 'app~2', 'app'], 'the copied-from stage is kept, keyed by index, and is no longer the final image');
  const copy = all.at(-1)!.steps[0]!;
  assert.deepEqual(copy.kind === 'copy' && copy.from, { kind: 'image', key: 'app~2' });
});

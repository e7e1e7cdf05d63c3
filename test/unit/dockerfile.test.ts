import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileDockerfile, dockerfileImageSpecs, SpecError } from '../../src/specfile/index.js';
import { parseDockerfile } from '../../src/specfile/dockerfile-parse.js';
import { processWord, processWords } from '../../src/specfile/dockerfile-words.js';
import { nodeSpecFs } from '../../src/specfile/node-ports.js';
import { tempDir } from '../support/tmp.js';

const compile = (text: string, extra: Partial<Parameters<typeof compileDockerfile>[0]> = {}) => compileDockerfile({ text, file: 'Dockerfile', key: 'app', ...extra });

test('continuations, comments inside them, the escape directive and JSON vs shell forms', () => {
  const p = parseDockerfile('# escape=`\nFROM scratch\nRUN echo a `\n  # a comment\n\n  b\nCMD ["x", "y"]\nCMD [not json\n');
  assert.equal(p.escape, '`');
  assert.deepEqual(p.instructions.map((i) => [i.keyword, i.line]), [['FROM', 2], ['RUN', 3], ['CMD', 7], ['CMD', 8]]);
  assert.equal(p.instructions[1]!.args, 'echo a   b');
  assert.deepEqual(p.instructions[2]!.json, ['x', 'y']);
  assert.equal(p.instructions[3]!.json, undefined);
});

test('word processing: quotes, escapes and ${VAR} forms as Docker does', () => {
  const vars = new Map([['A', 'x'], ['E', '']]);
  assert.equal(processWord('$A-${A}-${B:-d}-${E:-e}-${E-f}-${A:+set}-${B:+unset}', vars), 'x-x-d-e--set-');
  assert.equal(processWord(`'$A' "$A \\$A" \\$A`, vars), '$A x $A $A');
  assert.deepEqual(processWords('a "b c"  ${A}', vars), ['a', 'b c', 'x']);
  assert.throws(() => processWord('${A', vars));
  assert.equal(processWord('/x:$PATH:${A}:${B:-d}', vars, '\\', true), '/x:${PATH}:x:d');
});

test('a multi-stage build: needed stages become intermediate images, unused ones are dropped', () => {
  const r = compile(
    [
      'ARG BASE=busybox:1.36',
      'FROM ${BASE} AS unused',
      'RUN true',
      'FROM ${BASE} AS build',
      'ARG VERSION=dev',
      'WORKDIR /src',
      'COPY --chown=1:2 --chmod=755 . .',
      'RUN --network=host --mount=type=secret,id=npm make VERSION=$VERSION',
      'FROM scratch',
      'COPY --from=build /src/out /app',
      'COPY --from=0 /etc/passwd /etc/passwd',
      'ENTRYPOINT ["/app"]',
    ].join('\n'),
    { args: { VERSION: '1.2' }, allow: ['network.host'] },
  );
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.stages.map((s) => s.key), ['app~unused', 'app~build', 'app']);
  const [, build, app] = r.stages;
  assert.deepEqual(build!.from, { kind: 'ref', ref: 'docker.io/library/busybox:1.36' });
  assert.deepEqual(build!.steps[1], { kind: 'copy', src: ['.'], to: '.', chown: '1:2', chmod: '0755', from: undefined });
  assert.deepEqual(build!.steps[2], { kind: 'run', form: 'shell', command: ['make VERSION=$VERSION'], env: { VERSION: '1.2' }, network: 'host', secrets: [{ id: 'npm', target: '/run/secrets/npm', required: false }] });
  assert.deepEqual(app!.from, { kind: 'scratch' });
  assert.deepEqual(app!.steps[0]!.kind === 'copy' && app!.steps[0]!.from, { kind: 'image', key: 'app~build' });
  assert.deepEqual(app!.steps[1]!.kind === 'copy' && app!.steps[1]!.from, { kind: 'image', key: 'app~unused' });
  assert.deepEqual(app!.entrypoint, ['/app']);
  assert.equal(app!.final, true);
  assert.deepEqual(app!.stepLines, [10, 11]);

  const lean = compile('FROM busybox:1 AS a\nRUN a\nFROM busybox:1 AS b\nRUN b\nFROM b\nRUN c\n');
  assert.deepEqual(lean.stages.map((s) => s.key), ['app~b', 'app']);
  const target = compile('FROM busybox:1 AS a\nRUN a\nFROM busybox:1 AS b\n', { target: 'a' });
  assert.deepEqual(target.stages.map((s) => s.key), ['app']);
});

test('ENV, LABEL, ARG substitution, EXPOSE, VOLUME, SHELL, CMD shell form, HEALTHCHECK, MAINTAINER', () => {
  const r = compile(
    [
      'FROM busybox:1',
      'ARG USER=app',
      'ENV HOME=/home/$USER PATH="/opt/bin:$PATH" LEGACY_SPACE=1',
      'ENV OLD value with spaces',
      'LABEL "com.example.name"="my app" version=1',
      'WORKDIR ${HOME}',
      'USER ${USER}:${GROUP:-users}',
      'EXPOSE 80 53/UDP',
      'VOLUME ["/data", "/logs"]',
      'SHELL ["/bin/ash", "-eo", "pipefail", "-c"]',
      'CMD echo $HOME',
      'STOPSIGNAL SIGQUIT',
      'HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1',
      'MAINTAINER Jane <jane@example.com>',
    ].join('\n'),
  );
  assert.deepEqual(r.problems, []);
  const s = r.stages[0]!;
  assert.deepEqual(s.steps, [
    { kind: 'env', vars: { HOME: '/home/app', PATH: '/opt/bin:${PATH}', LEGACY_SPACE: '1' } },
    { kind: 'env', vars: { OLD: 'value with spaces' } },
    { kind: 'label', labels: { 'com.example.name': 'my app', version: '1' } },
    { kind: 'workdir', path: '/home/app' },
    { kind: 'user', user: 'app:users' },
    { kind: 'expose', ports: ['80/tcp', '53/udp'] },
    { kind: 'volume', paths: ['/data', '/logs'] },
    { kind: 'shell', argv: ['/bin/ash', '-eo', 'pipefail', '-c'] },
    { kind: 'stopsignal', signal: 'SIGQUIT' },
    { kind: 'healthcheck', test: ['CMD-SHELL', 'wget -q localhost || exit 1'], interval: 5e9, timeout: 0, startPeriod: 0, startInterval: 0, retries: 3 },
    { kind: 'label', labels: { maintainer: 'Jane <jane@example.com>' } },
  ]);
  assert.deepEqual(s.cmd, ['/bin/ash', '-eo', 'pipefail', '-c', 'echo $HOME']);
});

test('unsupported and malformed instructions are errors with their Dockerfile line', () => {
  const r = compile(['RUN early', 'FROM busybox:1', 'ONBUILD RUN x', 'ADD https://x.example/a.tgz /', 'RUN --mount=type=bind,target=/x make', 'COPY only-one', 'SHELL /bin/bash', 'FROM busybox:1 AS a', 'FROM busybox:1 AS a', 'CPY a b'].join('\n'));
  assert.deepEqual(
    r.problems.map((p) => [p.line, p.message.split(':')[0]]),
    [[1, 'RUN'], [3, 'ONBUILD'], [4, 'ADD'], [5, 'RUN'], [6, 'COPY'], [7, 'SHELL'], [9, 'FROM'], [10, 'CPY']],
  );
  assert.match(r.problems.at(-1)!.message, /did you mean "COPY"\?/);
  assert.equal(r.problems[0]!.file, 'Dockerfile');
  assert.match(compile('FROM busybox:1\nRUN <<EOF\necho\nEOF\nRUN ok\n').problems[0]!.message, /heredoc/);
  assert.equal(compile('FROM busybox:1\nRUN <<EOF\necho\nEOF\nRUN ok\n').problems.length, 1);
  assert.match(compile('# just a comment\n').problems[0]!.message, /no FROM/);
  assert.match(compile('FROM busybox:1\n', { target: 'nope' }).problems[0]!.message, /target stage "nope"/);
});

test('a plain Dockerfile build (dimg image build) compiles into named ImageSpecs and checks the context', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'ctx'));
  writeFileSync(join(dir, 'ctx', 'app.sh'), 'echo hi\n');
  writeFileSync(join(dir, 'Dockerfile'), 'FROM busybox:1.36 AS b\nCOPY app.sh /app.sh\nFROM busybox:1.36\nARG MSG\nRUN echo $MSG\nCOPY --from=b /app.sh /bin/app\n');
  const images = await dockerfileImageSpecs({ dockerfile: join(dir, 'Dockerfile'), context: join(dir, 'ctx'), tags: ['example.com/team/app:1', 'app'], args: { MSG: 'hi' }, fs: nodeSpecFs });
  assert.deepEqual(images.map((i) => [i.key, i.intermediate]), [['app~b', true], ['app', false]]);
  const app = images[1]!;
  assert.deepEqual(app.localRefs, ['example.com/team/app:1', 'docker.io/library/app:latest']);
  assert.deepEqual(app.tags, ['1', 'latest']);
  assert.equal(app.repository, 'example.com/team/app');
  assert.deepEqual(app.steps[0], { kind: 'run', form: 'shell', command: ['echo $MSG'], env: { MSG: 'hi' }, network: 'none', secrets: [] });
  assert.equal(app.context, join(dir, 'ctx'));

  writeFileSync(join(dir, 'Dockerfile.bad'), 'FROM busybox:1.36\nCOPY missing.txt /\n');
  await assert.rejects(
    dockerfileImageSpecs({ dockerfile: join(dir, 'Dockerfile.bad'), display: 'Dockerfile.bad', context: join(dir, 'ctx'), tags: [], fs: nodeSpecFs }),
    (e: unknown) => e instanceof SpecError && e.problems[0]!.line === 2 && /missing.txt" does not exist/.test(e.problems[0]!.message),
  );
  await assert.rejects(dockerfileImageSpecs({ dockerfile: join(dir, 'nope'), context: dir, tags: [], fs: nodeSpecFs }), (e: unknown) => (e as { code?: string }).code === 'DOCKERFILE_NOT_FOUND');
});

test('RUN --network=host needs the network.host entitlement from the person building, not from the Dockerfile', () => {
  const text = ['FROM busybox:1', 'RUN --network=host wget -q http://127.0.0.1:8080/', 'RUN --network=none true'].join('\n');
  const refused = compile(text, {});
  assert.equal(refused.problems.length, 1);
  const p = refused.problems[0]!;
  assert.match(p.message, /RUN: --network=host needs the network.host entitlement/);
  assert.deepEqual([p.file, p.line, p.col], ['Dockerfile', 2, 1]);
  const granted = compile(text, { allow: ['network.host'] });
  assert.deepEqual(granted.problems, []);
  assert.equal(granted.stages[0]!.steps[0]!.kind === 'run' && granted.stages[0]!.steps[0]!.network, 'host');
});

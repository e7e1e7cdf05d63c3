/** Stage 2 of the Dockerfile frontend alone: raw instructions → typed instructions, flags checked. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDockerfile } from '../../src/specfile/dockerfile-parse.js';
import { checkKeywordAndFlags, typeInstruction } from '../../src/specfile/dockerfile-instructions.js';

/** The single instruction of `text`, typed (or its error). */
const typed = (text: string, escape = '\\') => typeInstruction(parseDockerfile(text).instructions[0]!, escape);
const checked = (text: string) => checkKeywordAndFlags(parseDockerfile(text).instructions[0]!);

test('keywords and flags: unknown keywords with a suggestion, flags outside the per-instruction list', () => {
  assert.equal(checked('RUN x'), undefined);
  assert.equal(checked('COPY --from=a --chown=1 --chmod=644 --link a b'), undefined);
  assert.match(checked('CPY a b')!, /^unknown instruction; did you mean "COPY"\?$/);
  assert.equal(checked('ADD --from=x a b'), 'the flag --from is not supported (supported: --chown, --chmod, --link)');
  assert.equal(checked('ENV --x=1 A=b'), 'the flag --x is not supported');
  assert.equal(checked('ONBUILD RUN x'), undefined, 'ONBUILD is known; typing refuses it');
});

test('each keyword becomes its own typed instruction, arguments left unexpanded', () => {
  assert.deepEqual(typed('FROM --platform=$P ${BASE} AS b'), { kind: 'FROM', line: 1, args: '${BASE} AS b' });
  assert.deepEqual(typed('ARG A=1 B C="x $y"'), { kind: 'ARG', line: 1, decls: [{ name: 'A', value: '1' }, { name: 'B' }, { name: 'C', value: '"x $y"' }] });
  assert.deepEqual(typed('COPY --from=$S --chown=$U --chmod=755 a $B /d/'), { kind: 'COPY', line: 1, paths: { shell: 'a $B /d/' }, from: '$S', chown: '$U', chmod: '755' });
  assert.deepEqual(typed('ADD ["a b", "/c"]'), { kind: 'ADD', line: 1, paths: { json: ['a b', '/c'] }, from: undefined, chown: undefined, chmod: undefined });
  assert.deepEqual(typed('ENV A=$X "B C"="d e"'), { kind: 'ENV', line: 1, legacy: false, pairs: [['A', '$X'], ['"B C"', '"d e"']] });
  assert.deepEqual(typed('ENV OLD value  with $X'), { kind: 'ENV', line: 1, legacy: true, pairs: [['OLD', 'value  with $X']] });
  assert.deepEqual(typed('WORKDIR  $HOME  '), { kind: 'WORKDIR', line: 1, value: '$HOME' });
  assert.deepEqual(typed('MAINTAINER Jane  Doe'), { kind: 'MAINTAINER', line: 1, value: 'Jane  Doe' });
  assert.deepEqual(typed('EXPOSE 80 $P'), { kind: 'EXPOSE', line: 1, ports: '80 $P' });
  assert.deepEqual(typed('VOLUME ["/a"]'), { kind: 'VOLUME', line: 1, paths: { json: ['/a'] } });
  assert.deepEqual(typed('SHELL ["/bin/ash", "-c"]'), { kind: 'SHELL', line: 1, argv: ['/bin/ash', '-c'] });
  assert.deepEqual(typed('CMD echo $HOME'), { kind: 'CMD', line: 1, form: { shell: 'echo $HOME' } });
  assert.deepEqual(typed('ENTRYPOINT ["/app"]'), { kind: 'ENTRYPOINT', line: 1, form: { json: ['/app'] } });
});

test('RUN: --network and --mount=type=secret parsed, anything else refused', () => {
  assert.deepEqual(typed('RUN --network=host --mount=type=secret,id=npm,required=true make'), {
    kind: 'RUN',
    line: 1,
    form: { shell: 'make' },
    network: 'host',
    secrets: [{ id: 'npm', target: '/run/secrets/npm', required: true }],
  });
  assert.deepEqual(typed('RUN --mount=type=secret,dst=/k/key ["cat", "/k/key"]'), { kind: 'RUN', line: 1, form: { json: ['cat', '/k/key'] }, network: 'none', secrets: [{ id: 'key', target: '/k/key', required: false }] });
  assert.deepEqual(typed('RUN --network=bridge x'), { error: '--network=bridge is not supported (none, host or default)' });
  assert.deepEqual(typed('RUN --mount=type=cache,target=/c x'), { error: '--mount=type=cache is not supported (only type=secret)' });
  assert.deepEqual(typed('RUN --mount=type=secret x'), { error: '--mount=type=secret needs id=ID' });
  assert.deepEqual(typed('RUN --mount=type=secret,id=a,size=1 x'), { error: '--mount option "size" is not supported for secrets' });
  assert.deepEqual(typed('RUN --mount=type=secret,id=a,env=A x'), { error: '--mount=type=secret,env=… is not supported; mount the secret as a file' });
  assert.deepEqual(typed('RUN   '), { error: 'needs a command' });
});

test('HEALTHCHECK, SHELL, ENV/LABEL shapes and ONBUILD are checked before any expansion', () => {
  assert.deepEqual(typed('HEALTHCHECK NONE'), { kind: 'HEALTHCHECK', line: 1, test: ['NONE'] });
  assert.deepEqual(typed('HEALTHCHECK --interval=1m --start-interval=1s --retries=2 CMD ["a", "b"]'), { kind: 'HEALTHCHECK', line: 1, test: ['CMD', 'a', 'b'], options: { interval: 60e9, startInterval: 1e9, retries: 2 } });
  assert.deepEqual(typed('HEALTHCHECK CMD curl x || exit 1'), { kind: 'HEALTHCHECK', line: 1, test: ['CMD-SHELL', 'curl x || exit 1'], options: {} });
  assert.deepEqual(typed('HEALTHCHECK --timeout=soon CMD x'), { error: '--timeout=soon is not a duration such as 30s' });
  assert.deepEqual(typed('HEALTHCHECK --retries=-1 CMD x'), { error: '--retries=-1 is not a whole number' });
  assert.deepEqual(typed('HEALTHCHECK x'), { error: 'expected HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE' });
  assert.deepEqual(typed('SHELL /bin/sh -c'), { error: 'must be written in JSON form, e.g. SHELL ["/bin/sh", "-c"]' });
  assert.deepEqual(typed('SHELL []'), { error: 'must be written in JSON form, e.g. SHELL ["/bin/sh", "-c"]' });
  assert.deepEqual(typed('ENV A'), { error: 'expected ENV NAME=VALUE [NAME=VALUE...]' });
  assert.deepEqual(typed('LABEL a b'), { error: 'expected LABEL NAME=VALUE [NAME=VALUE...]' });
  assert.deepEqual(typed('LABEL a=1 =2'), { error: 'expected LABEL NAME=VALUE [NAME=VALUE...]' });
  assert.match((typed('ONBUILD RUN x') as { error: string }).error, /^ONBUILD is not supported/);
});

test('the escape character of the file splits ENV pairs', () => {
  assert.deepEqual(typed('ENV A=a` b C=c', '`'), { kind: 'ENV', line: 1, legacy: false, pairs: [['A', 'a` b'], ['C', 'c']] });
});

/**
 * Golden expectations for the Dockerfile frontend: a corpus of representative Dockerfiles (valid and
 * broken) compiled into stages, steps and problems, and a few plain-Dockerfile builds into ImageSpecs,
 * compared with `test/fixtures/dockerfile-golden.json`. The expectations were captured from the
 * compiler before it was split into stages (issue #15, point 5), so any change in what a Dockerfile
 * compiles to, and so in the images' digests, shows up here. Regenerate only for an intended change:
 * `DIMG_UPDATE_GOLDEN=1 node test/run.mjs dockerfile-golden`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileDockerfile, dockerfileImageSpecs, SpecError, type CompileDockerfileOptions } from '../../src/specfile/index.js';
import { nodeSpecFs } from '../../src/specfile/node-ports.js';
import { REPO_ROOT } from '../support/cli.js';
import { tempDir } from '../support/tmp.js';

const GOLDEN = join(REPO_ROOT, 'test', 'fixtures', 'dockerfile-golden.json');

type Case = { name: string; text: string[] | string; opts?: Partial<CompileDockerfileOptions> };

/** Dockerfiles compiled with `compileDockerfile`; each covers a family of instructions or errors. */
const CASES: Case[] = [
  {
    name: 'multi-stage, ARG before FROM, COPY --from by name and index, --chown/--chmod, secrets',
    text: [
      'ARG BASE=busybox:1.36',
      'ARG UNUSED',
      'FROM ${BASE} AS unused',
      'RUN true',
      'FROM ${BASE} AS build',
      'ARG VERSION=dev',
      'ARG BASE',
      'WORKDIR /src',
      'COPY --chown=1:2 --chmod=755 . .',
      'COPY --chown=${VERSION}:grp --chmod=0640 ["a b", "c", "/dst/"]',
      'RUN --network=host --mount=type=secret,id=npm make VERSION=$VERSION BASE=$BASE',
      'RUN --mount=type=secret,target=/run/key,required=true --mount=type=secret,id=tok,dst=/t cat /run/key',
      'FROM scratch',
      'COPY --from=build /src/out /app',
      'COPY --from=0 /etc/passwd /etc/passwd',
      'COPY --from=alpine:3.19 /bin/sh /bin/sh',
      'ENTRYPOINT ["/app"]',
      'CMD ["--help"]',
    ],
    opts: { args: { VERSION: '1.2' }, allow: ['network.host'] },
  },
  {
    name: 'ENV, LABEL, ARG substitution, EXPOSE, VOLUME, SHELL, CMD shell form, HEALTHCHECK, MAINTAINER',
    text: [
      'FROM busybox:1',
      'ARG USER=app',
      'ENV HOME=/home/$USER PATH="/opt/bin:$PATH" LEGACY_SPACE=1',
      'ENV OLD value with spaces',
      'ENV DERIVED=${HOME}/bin:${OLD} EMPTY= Q="a \\"q\\" b"',
      'LABEL "com.example.name"="my app" version=1 home=$HOME',
      'WORKDIR ${HOME}',
      'USER ${USER}:${GROUP:-users}',
      'EXPOSE 80 53/UDP 8000-8010/tcp',
      'VOLUME ["/data", "/logs"]',
      'VOLUME /a $HOME/b',
      'SHELL ["/bin/ash", "-eo", "pipefail", "-c"]',
      'CMD echo $HOME',
      'ENTRYPOINT exec app',
      'STOPSIGNAL SIGQUIT',
      'HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost || exit 1',
      'MAINTAINER Jane <jane@example.com>',
      'RUN ["echo", "$HOME"]',
      'RUN echo $USER',
      'ENV USER=override',
      'RUN echo $USER',
    ],
  },
  {
    name: 'HEALTHCHECK forms',
    text: [
      'FROM busybox:1',
      'HEALTHCHECK NONE',
      'HEALTHCHECK --timeout=1m30s --start-period=2s --start-interval=500ms CMD ["wget", "-q", "x"]',
      'HEALTHCHECK --interval=never CMD true',
      'HEALTHCHECK --retries=x CMD true',
      'HEALTHCHECK echo',
      'HEALTHCHECK --bogus=1 CMD true',
    ],
  },
  {
    name: 'platform args and global ARG re-import',
    text: [
      'ARG TAG=1.36',
      'FROM --platform=$BUILDPLATFORM busybox:${TAG}-${TARGETARCH} AS b',
      'ARG TARGETARCH',
      'ARG TARGETOS',
      'ARG TAG',
      'ARG NOPE',
      'RUN echo $TARGETARCH $TARGETOS $TAG $NOPE',
      'FROM b',
      'RUN echo $TAG',
    ],
    opts: { platform: 'linux/arm64/v8' },
  },
  {
    name: 'spec images in FROM and COPY --from',
    text: ['FROM base', 'COPY --from=tool /bin/tool /bin/tool', 'COPY --from=other:1 /x /x', 'FROM base AS second', 'COPY --from=0 /a /a'],
    opts: { imageKeys: new Set(['base', 'tool']) },
  },
  {
    name: 'target selection, case-insensitive stage names, FROM an earlier stage',
    text: ['FROM busybox:1 AS Build', 'RUN a', 'FROM busybox:1 AS b', 'RUN b', 'FROM build AS c', 'COPY --from=B /x /x', 'FROM c', 'RUN d'],
    opts: { target: 'C' },
  },
  { name: 'unknown target', text: 'FROM busybox:1 AS build\n', opts: { target: 'biuld' } },
  {
    name: 'escape directive, continuations and CRLF',
    text: '# escape=`\r\nFROM busybox:1\r\nRUN echo a `\r\n  # comment\r\n\r\n  b\r\nCOPY C:\\src `\r\n  C:\\dst\r\nENV P=`$HOME\r\n',
  },
  { name: 'bad escape directive', text: '# escape=x\nFROM busybox:1\n' },
  {
    name: 'unsupported and malformed instructions',
    text: [
      'RUN early',
      'FROM busybox:1',
      'ONBUILD RUN x',
      'ADD https://x.example/a.tgz /',
      'ADD git@github.com:a/b.git /src',
      'ADD --chown=1 local.tgz /opt/',
      'RUN --mount=type=bind,target=/x make',
      'RUN --mount=type=secret,env=TOKEN make',
      'RUN --mount=type=secret,mode=0400,uid=1,gid=2,bogus=1 make',
      'RUN --mount=type=secret make',
      'RUN --network=bridge make',
      'RUN --network=default make',
      'RUN',
      'COPY only-one',
      'COPY --from=9 a b',
      'COPY --from=scratch a b',
      'COPY --from=1 a b',
      'COPY --chmod=9 a b',
      'COPY --foo=1 a b',
      'ADD --from=x a b',
      'SHELL /bin/bash',
      'EXPOSE',
      'EXPOSE 80/http',
      'VOLUME',
      'VOLUME [""]',
      'WORKDIR',
      'USER ""',
      'ENV',
      'ENV A',
      'LABEL a',
      'LABEL =b',
      'WORKDIR ${A',
      'USER ${X:?must be set}',
      'ENV B=${C?}',
      'COPY "unterminated /x',
      'FROM busybox:1 AS a',
      'FROM busybox:1 AS a',
      'FROM busybox:1 AS 1bad',
      'FROM a b',
      'FROM UPPER/Case:tag',
      'FROM',
      'CPY a b',
      'MAINTAINER $USER',
    ],
  },
  { name: 'heredoc is refused and its body skipped', text: 'FROM busybox:1\nRUN <<EOF\necho\nEOF\nCOPY <<-END /x\n\tbody\n\tEND\nRUN ok\nRUN ["<<EOF"]\n' },
  { name: 'only a comment', text: '# just a comment\n' },
  { name: 'only ARGs', text: 'ARG A=1\nARG B\n' },
  { name: 'empty file', text: '' },
  { name: 'broken FROM keeps checking the stage', text: 'FROM a b c d\nRUN x\nCOPY --from=0 a b\nSHELL x\n' },
  {
    name: 'build args override ARG defaults, in and before stages',
    text: ['ARG V=1', 'ARG W', 'FROM busybox:${V}${W}', 'ARG V', 'ARG X=${V}-x', 'ENV E=$X', 'RUN echo $V $X $E', 'CMD ["sh"]', 'CMD sh -c x'],
    opts: { args: { V: '2', W: '-musl', X: 'given' } },
  },
  { name: 'lower-case keywords and flags', text: 'from busybox:1 as Base\nrun --NETWORK=none echo\ncopy --CHOWN=0 a b\nentrypoint ["x"]\n' },
];

/** JSON that keeps `undefined` members, so a field present-but-undefined and an absent one differ. */
function canonical(v: unknown): unknown {
  return JSON.parse(
    JSON.stringify(v, (_k, x: unknown) => {
      if (x === undefined) return '<undefined>';
      if (x instanceof Set) return [...x];
      return x;
    }),
  );
}

function compileCase(c: Case): unknown {
  const text = Array.isArray(c.text) ? c.text.join('\n') : c.text;
  return canonical(compileDockerfile({ text, file: 'Dockerfile', key: 'app', ...c.opts }));
}

/** Plain Dockerfile builds (`dimg image build`) into ImageSpecs, the context path replaced by `<ctx>`. */
async function imageSpecCases(dir: string): Promise<Record<string, unknown>> {
  const ctx = join(dir, 'ctx');
  mkdirSync(join(ctx, 'src'), { recursive: true });
  writeFileSync(join(ctx, 'app.sh'), 'echo hi\n');
  writeFileSync(join(ctx, 'src', 'main.c'), 'int main(){}\n');
  const files: Record<string, { text: string; tags: string[]; args?: Record<string, string>; target?: string; platform?: string }> = {
    multistage: {
      text: 'ARG BASE=busybox:1.36\nFROM $BASE AS b\nCOPY --chown=1:1 src /src\nRUN cc /src/main.c\nFROM ${BASE}\nARG MSG\nENV M=$MSG\nRUN echo $MSG\nCOPY --from=b /a.out /bin/app\nCOPY app.sh /\nENTRYPOINT ["/bin/app"]\n',
      tags: ['example.com/team/app:1', 'app'],
      args: { MSG: 'hi' },
      platform: 'linux/amd64',
    },
    target: { text: 'FROM busybox:1 AS one\nCOPY app.sh /\nFROM one AS two\nRUN x\nFROM scratch\n', tags: ['t:2'], target: 'two' },
    untagged: { text: 'FROM scratch\nCOPY app.sh /\nLABEL a=b\nCMD ["/app.sh"]\n', tags: [] },
  };
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(files)) {
    writeFileSync(join(dir, `Dockerfile.${name}`), f.text);
    try {
      const images = await dockerfileImageSpecs({ dockerfile: join(dir, `Dockerfile.${name}`), display: `Dockerfile.${name}`, context: ctx, tags: f.tags, args: f.args, target: f.target, platform: f.platform, fs: nodeSpecFs });
      out[name] = JSON.parse(JSON.stringify(canonical(images)).split(dir).join('<dir>'));
    } catch (e) {
      out[name] = { error: e instanceof SpecError ? canonical(e.problems) : String(e) };
    }
  }
  return out;
}

test('the Dockerfile frontend compiles the golden corpus exactly as captured', async (t) => {
  const actual = {
    compiled: Object.fromEntries(CASES.map((c) => [c.name, compileCase(c)])),
    imageSpecs: await imageSpecCases(tempDir(t)),
  };
  if (process.env.DIMG_UPDATE_GOLDEN === '1') {
    writeFileSync(GOLDEN, `${JSON.stringify(actual, null, 2)}\n`);
    return;
  }
  const golden = JSON.parse(readFileSync(GOLDEN, 'utf8')) as typeof actual;
  assert.deepEqual(Object.keys(actual.compiled), Object.keys(golden.compiled), 'the corpus and the golden file list the same cases');
  for (const name of Object.keys(golden.compiled)) assert.deepEqual(actual.compiled[name], golden.compiled[name], name);
  assert.deepEqual(actual.imageSpecs, golden.imageSpecs);
  // Key order too: it is part of the canonical JSON that image configs and cache keys are made from.
  assert.equal(JSON.stringify(actual), JSON.stringify(golden));
});

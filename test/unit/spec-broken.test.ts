/**
 * Table-driven broken specs (test/fixtures/specs/broken): every problem of each file, with its
 * exact file:line:col and message, all reported at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadSpec, SpecError, formatProblems } from '../../src/specfile/index.js';
import { nodeSpecPorts } from '../../src/specfile/node-ports.js';
import { REPO_ROOT } from '../support/cli.js';

const DIR = join(REPO_ROOT, 'test/fixtures/specs/broken');
const ports = nodeSpecPorts({ cwd: DIR, env: {}, git: async () => undefined, now: () => new Date(Date.UTC(2026, 0, 9)) });

/** [file, [where, message]...]; `message` is the full text unless it ends with `…` (a prefix). */
const CASES: [string, [string, string][]][] = [
  ['syntax.yaml', [['syntax.yaml:5:5', 'YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]']]],
  [
    'duplicate-keys.yaml',
    [
      ['duplicate-keys.yaml:6:5', 'duplicate key "tags"'],
      ['duplicate-keys.yaml:7:3', 'duplicate key "web"'],
    ],
  ],
  [
    'unknown-keys.yaml',
    [
      ['unknown-keys.yaml:2:1', '(top level): unknown key "projcet"; did you mean "project"?'],
      ['unknown-keys.yaml:7:5', 'images.web: unknown key "tgs"; did you mean "tags"?'],
      ['unknown-keys.yaml:11:9', 'images.web.steps[0]: unknown key "chwon"; did you mean "chown"?'],
      ['unknown-keys.yaml:12:9', 'images.web.steps[1]: unknown step "rn"; did you mean "run"?'],
      ['unknown-keys.yaml:14:9', 'images.web.steps[2]: one step has several kinds ("run" and "copy"); make them separate steps'],
      ['unknown-keys.yaml:15:30', 'images.web.steps[3].healthcheck.test: must be a string, or a list, not the number 5'],
      ['unknown-keys.yaml:16:18', 'images.web.steps[4].expose[0]: "http" is not valid: use a port such as 8080, 8080/udp or 8000-8010/tcp'],
    ],
  ],
  [
    'types.yaml',
    [
      ['types.yaml:1:10', 'version: must be 1, not 2'],
      ['types.yaml:4:13', 'images.web.from: unknown key "rootfz"; did you mean "rootfs"?'],
      ['types.yaml:5:12', 'images.web.tags[0]: must be a string, not the number 1 (quote it: "1")'],
      ['types.yaml:6:11', 'images.web.push: must be a list, not the string "local"'],
      ['types.yaml:9:18', 'images.web.steps[0].network: must be one of none, host, not "bridge"'],
    ],
  ],
  [
    'graph.yaml',
    [
      ['graph.yaml:3:3', 'images form a cycle: a -> b -> a'],
      ['graph.yaml:8:11', 'from: "bsae" names no image of this file; did you mean "base"? (a registry image needs a tag or a full name, e.g. docker.io/library/bsae:latest)'],
      ['graph.yaml:12:11', 'from: image "d" cannot be built from itself'],
      ['graph.yaml:14:11', 'from: invalid reference "docker.io/Library/BusyBox:1": repository names must be lowercase'],
      ['graph.yaml:20:15', 'copy from: "wroker" names no image of this file (a registry image needs a tag or a full name, e.g. docker.io/library/wroker:latest)'],
    ],
  ],
  [
    'registries.yaml',
    [
      ['registries.yaml:3:10', 'registry "prd" is not declared under "registries"; did you mean "prod"?'],
      ['registries.yaml:8:10', 'registries.prod.url: "https://registry.example.com" is not valid: use host[:port][/path-prefix] without a scheme, e.g. registry.example.com/team'],
      ['registries.yaml:13:12', 'registry "lcoal" is not declared under "registries"; did you mean "local"?'],
    ],
  ],
  ['claims.yaml', [['claims.yaml:14:17', 'image "web2" claims docker.io/shop/web:latest in the local store, already claimed by image "web" (claims.yaml:6:3)']]],
  [
    'tags.yaml',
    [
      ['tags.yaml:6:9', 'tag "${env.MISSING}": environment variable MISSING is not set and "${env.MISSING}" has no default (write ${env.MISSING:-default})'],
      ['tags.yaml:8:9', 'tag "${git.sha}": "${git.sha}" needs a git checkout, and the spec is not inside one'],
      ['tags.yaml:9:9', 'tag "bad tag!" renders to "bad tag!", which is not a valid tag (1–128 of letters, digits, _ . -, not starting with . or -)'],
      ['tags.yaml:10:9', 'tag "${nope}": unknown template variable "${nope}" (known: git.sha, git.short, git.branch, env.NAME, env.NAME:-default, date)'],
      ['tags.yaml:11:9', 'tag "${date}-${env.BUILD}": environment variable BUILD is not set…'],
      ['tags.yaml:13:9', 'tag "dup" is listed twice for web'],
      ['tags.yaml:14:9', 'tag "dimg-state-web" is reserved: tags starting with dimg-state- hold dimg\'s ownership records (see "Prune and ownership" in docs/commands/plan.md); choose another tag'],
    ],
  ],
  [
    'files.yaml',
    [
      ['df/Dockerfile:2:1', 'ONBUILD: ONBUILD is not supported…'],
      ['df/Dockerfile:3:1', 'ADD: ADD of a URL or git repository (https://example.com/x.tgz) is not supported…'],
      ['df/Dockerfile:4:1', 'RUN with a heredoc (<<EOF) is not supported…'],
      ['df/Dockerfile:7:1', 'RUN: --mount=type=cache is not supported (only type=secret)'],
      ['df/Dockerfile:8:1', 'copy source "missing.txt" does not exist in the context (df)'],
      ['df/Dockerfile:9:1', 'FORM: unknown instruction; did you mean "FROM"?'],
      ['df/Dockerfile:10:1', 'COPY: --from=nowhere/Nope names no earlier stage and is not a valid image reference'],
      ['df/Dockerfile:11:1', 'EXPOSE: "http" is not a port such as 8080, 8080/udp or 8000-8010/tcp'],
      ['files.yaml:4:21', 'rootfs ./no-such-rootfs does not exist'],
      ['files.yaml:6:22', 'archive ./ctx is not a file'],
      ['files.yaml:8:17', 'Dockerfile ./no/Dockerfile does not exist'],
      ['files.yaml:11:14', 'context directory ./no-such-dir does not exist'],
      ['files.yaml:16:9', 'copy source "../secret.txt" is outside the context (ctx)'],
      ['files.yaml:18:9', 'copy source "missing.txt" does not exist in the context (ctx)'],
      ['files.yaml:20:9', 'copy source "*.md" matches no file in the context (ctx)'],
      ['files.yaml:22:9', 'copy source "ignored.log" is excluded by the context\'s .dockerignore'],
      ['files.yaml:27:9', 'image "f": a copy step needs a "context" directory to copy from'],
      ['files.yaml:30:11', 'image "g": "from" and "dockerfile" cannot both be given (the Dockerfile\'s FROM is the base)'],
    ],
  ],
];

for (const [file, expected] of CASES) {
  test(`broken spec ${file}: every problem, located`, async () => {
    let err: unknown;
    try {
      await loadSpec(file, ports);
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof SpecError, `${file} should not load`);
    const got = err.problems.map((p) => [`${p.file}:${p.line}:${p.col}`, p.message] as [string, string]);
    assert.equal(got.length, expected.length, `${file} problems:\n${formatProblems(err.problems)}`);
    expected.forEach(([where, message], i) => {
      assert.equal(got[i]![0], where, `problem ${i} of ${file}: ${got[i]![1]}`);
      if (message.endsWith('…')) assert.ok(got[i]![1].startsWith(message.slice(0, -1)), `${got[i]![1]} should start with ${message}`);
      else assert.equal(got[i]![1], message);
    });
    // Each problem shows the offending source line with a caret under the column.
    const p = err.problems[0]!;
    const rendered = formatProblems([p]).split('\n');
    assert.match(rendered[1]!, new RegExp(`^\\s*${p.line} \\| `));
    assert.equal(rendered[2]!.indexOf('^') - rendered[2]!.indexOf('|') - 2, p.col - 1);
  });
}

/**
 * `loadSpec`: reads images.yaml through the ports, parses it keeping positions, validates it
 * against the schema, normalises it and checks everything the schema cannot (graph, references,
 * registries, tags, files), collecting every problem with its `file:line:col`. Returns the frozen
 * `Spec` or throws one `SpecError` listing all problems.
 */
import { posix } from 'node:path';
import { DimgError } from '../errors.js';
import { isValidTag, parseReference, type ParsedReference } from '../oci/reference.js';
import type { BaseSpec, CopyFrom, ImageSpec, RegistrySpec, Spec, Step, TargetSpec } from './model.js';
import { DEFAULT_WATCH_TAGS, deepFreeze } from './model.js';
import { stageImage } from './stage-image.js';
import { isStateTag, STATE_TAG_PREFIX } from '../registry/ownership-record.js';
import type { GitInfo, SpecPorts } from './ports.js';
import { SpecError, closest, didYouMean, sortProblems, type Problem } from './problems.js';
import { parseYaml, keyRange, rangeForPath, nodeAt, type JsonPath, type ParsedYaml } from './yaml-source.js';
import { checkSchema } from './schema-check.js';
import { renderTemplate, usesGit } from './template.js';
import { DEFAULT_SHELL, stepFromYaml, stringMap } from './steps.js';
import { compileDockerfile } from './dockerfile.js';
import { orderGraph } from './graph.js';
import { contextIgnore, copySourceProblems } from './sources.js';

/** The loaded spec file name when none is given. */
export { DEFAULT_SPEC_FILE } from './model.js';
export { stageImage };

type Raw = Record<string, unknown>;

/** How a path is shown in messages: relative to the working directory when inside it. */
export function displayPath(abs: string, cwd: string): string {
  const rel = posix.relative(cwd, abs);
  return rel !== '' && !rel.startsWith('..') && !posix.isAbsolute(rel) ? rel : abs;
}

/**
 * Loads, validates and normalises a spec. Throws SPEC_NOT_FOUND when the file is missing and
 * SpecError (SPEC_INVALID) with every problem when it is not valid.
 */
export async function loadSpec(file: string, ports: SpecPorts): Promise<Spec> {
  const abs = posix.resolve(ports.cwd, file);
  const display = displayPath(abs, ports.cwd);
  const text = await ports.fs.readText(abs);
  if (text === undefined) {
    throw new DimgError('SPEC_NOT_FOUND', `spec file ${display} does not exist`, 'pass the path of your images.yaml, or create one (see `dimg schema`)');
  }
  const { spec, problems } = await loadSpecText(abs, display, text, ports);
  if (problems.length > 0 || !spec) throw new SpecError(display, sortProblems(problems));
  return spec;
}

/** Loads from text already read; returns the spec (when valid) and every problem. */
export async function loadSpecText(abs: string, display: string, text: string, ports: SpecPorts): Promise<{ spec?: Spec; problems: Problem[] }> {
  const parsed = parseYaml(display, text);
  if (parsed.problems.length > 0) return { problems: parsed.problems };
  if (parsed.value === undefined || parsed.value === null) {
    return { problems: [parsed.source.problem([0, 1], 'the file is empty; it needs at least "version: 1" and "images:"')] };
  }
  const schemaProblems = checkSchema(parsed.value, parsed.doc, parsed.source);
  const raw = parsed.value as Raw;
  if (typeof raw !== 'object' || Array.isArray(raw)) return { problems: schemaProblems };
  const n = new Normaliser(abs, parsed, ports, schemaProblems);
  const spec = await n.run(raw);
  return { spec: n.problems.length === 0 ? spec : undefined, problems: n.problems };
}

class Normaliser {
  readonly problems: Problem[];
  private readonly dir: string;
  private git: Promise<GitInfo | undefined> | undefined;

  constructor(
    private readonly file: string,
    private readonly parsed: ParsedYaml,
    private readonly ports: SpecPorts,
    schemaProblems: Problem[],
  ) {
    this.problems = [...schemaProblems];
    this.dir = posix.dirname(file);
  }

  private at(path: JsonPath, message: string, key?: string): void {
    const range = key === undefined ? rangeForPath(this.parsed.doc, path) : keyRange(this.parsed.doc, path, key);
    this.problems.push(this.parsed.source.problem(range, message));
  }

  private resolvePath(p: string): string {
    return posix.resolve(this.dir, p);
  }

  private gitInfo(): Promise<GitInfo | undefined> {
    this.git ??= this.ports.git(this.dir);
    return this.git;
  }

  async run(raw: Raw): Promise<Spec | undefined> {
    const schemaOk = this.problems.length === 0;
    const imagesRaw = isRecord(raw.images) ? raw.images : {};
    const registries = this.registries(raw);
    const defaultsRaw = isRecord(raw.defaults) ? raw.defaults : {};
    const defaults = {
      platform: typeof defaultsRaw.platform === 'string' ? defaultsRaw.platform : undefined,
      labels: stringMap(recordOr(defaultsRaw.labels)),
      annotations: stringMap(recordOr(defaultsRaw.annotations)),
      args: stringMap(recordOr(defaultsRaw.args)),
      push: stringList(defaultsRaw.push),
      watchTags: Array.isArray(defaultsRaw.watchTags) ? stringList(defaultsRaw.watchTags) : [...DEFAULT_WATCH_TAGS],
    };
    for (const [i, r] of defaults.push.entries()) {
      if (!registries[r]) this.at(['defaults', 'push', i], `registry "${r}" is not declared under "registries"${didYouMean(r, Object.keys(registries))}`);
    }
    const keys = new Set(Object.keys(imagesRaw));
    const images: ImageSpec[] = [];
    for (const [key, value] of Object.entries(imagesRaw)) {
      if (!isRecord(value)) continue;
      // Only schema-valid images are normalised; otherwise messages would cascade.
      if (!schemaOk && this.hasSchemaProblem(['images', key])) continue;
      images.push(...(await this.image(key, value, keys, registries, defaults)));
    }
    this.checkClaims(images);
    const ordered = this.order(images);
    if (!schemaOk || this.problems.length > 0) return undefined;
    const spec: Spec = {
      file: this.file,
      dir: this.dir,
      version: 1,
      project: typeof raw.project === 'string' ? raw.project : defaultProject(this.dir),
      projectDeclared: typeof raw.project === 'string',
      defaults,
      registries,
      images: ordered,
      prune: raw.prune === true,
      notify: stringList(raw.notify),
    };
    return deepFreeze(spec);
  }

  private hasSchemaProblem(path: JsonPath): boolean {
    const node = nodeAt(this.parsed.doc, path);
    const range = node.key?.range ?? node.node?.range;
    if (!range) return false;
    const start = this.parsed.source.position(range[0]).line;
    const endNode = node.node?.range;
    const end = endNode ? this.parsed.source.position(Math.max(endNode[0], endNode[2] - 1)).line : start;
    return this.problems.some((p) => p.line >= start && p.line <= end);
  }

  private registries(raw: Raw): Record<string, RegistrySpec> {
    const out: Record<string, RegistrySpec> = {};
    for (const [name, r] of Object.entries(recordOr(raw.registries))) {
      if (!isRecord(r) || typeof r.url !== 'string') continue;
      const slash = r.url.indexOf('/');
      const auth = isRecord(r.auth) ? { usernameEnv: String(r.auth.usernameEnv), passwordEnv: String(r.auth.passwordEnv) } : undefined;
      out[name] = {
        name,
        url: r.url.replace(/\/+$/, ''),
        host: slash < 0 ? r.url : r.url.slice(0, slash),
        prefix: slash < 0 ? '' : r.url.slice(slash + 1).replace(/\/+$/, ''),
        insecure: r.insecure === true,
        auth,
        mirrors: stringList(r.mirrors),
        ca: typeof r.ca === 'string' ? this.resolvePath(r.ca) : undefined,
      };
    }
    return out;
  }

  /** Resolves a YAML `from` string: an image key, `scratch`, or a reference with a tag/digest/host. */
  private resolveName(name: string, keys: ReadonlySet<string>, self: string): { base?: BaseSpec; problem?: string } {
    if (name === 'scratch') return { base: { kind: 'scratch' } };
    if (keys.has(name)) {
      if (name === self) return { problem: `image "${self}" cannot be built from itself` };
      return { base: { kind: 'image', key: name } };
    }
    if (!/[/:@]/.test(name)) {
      // A bare word is an image key of this file; a typo must not silently become a Docker Hub pull.
      const hint = `a registry image needs a tag or a full name, e.g. docker.io/library/${name}:latest`;
      const guess = closest(name, keys);
      return { problem: guess ? `"${name}" names no image of this file; did you mean "${guess}"? (${hint})` : `"${name}" names no image of this file (${hint})` };
    }
    try {
      return { base: { kind: 'ref', ref: parseReference(name).toString() } };
    } catch (e) {
      return { problem: (e as Error).message };
    }
  }

  private async image(key: string, v: Raw, keys: ReadonlySet<string>, registries: Record<string, RegistrySpec>, defaults: Spec['defaults']): Promise<ImageSpec[]> {
    const p: JsonPath = ['images', key];
    const location = this.parsed.source.location(keyRange(this.parsed.doc, ['images'], key));
    const platform = typeof v.platform === 'string' ? v.platform : defaults.platform;
    let from: BaseSpec = { kind: 'scratch' };
    let context: string | undefined;
    if (typeof v.context === 'string') {
      context = this.resolvePath(v.context);
      const kind = await this.ports.fs.stat(context);
      if (kind !== 'dir') this.at([...p, 'context'], kind ? `context ${v.context} is not a directory` : `context directory ${v.context} does not exist`);
    }
    let steps: Step[] = [];
    let stepPaths: (JsonPath | { file: string; line: number })[] = [];
    const extra: ImageSpec[] = [];
    let entrypoint: string[] | undefined;
    let cmd: string[] | undefined;
    let dockerfile: string | undefined;

    if (typeof v.dockerfile === 'string') {
      if (v.from !== undefined) this.at([...p, 'from'], `image "${key}": "from" and "dockerfile" cannot both be given (the Dockerfile's FROM is the base)`, undefined);
      if (v.steps !== undefined) this.at([...p, 'steps'], `image "${key}": "steps" and "dockerfile" cannot both be given; put the steps in the Dockerfile`, undefined);
      dockerfile = this.resolvePath(v.dockerfile);
      context ??= posix.dirname(dockerfile);
      const text = await this.ports.fs.readText(dockerfile);
      if (text === undefined) {
        this.at([...p, 'dockerfile'], `Dockerfile ${v.dockerfile} does not exist`);
      } else {
        const dfDisplay = displayPath(dockerfile, this.ports.cwd);
        const compiled = compileDockerfile({
          text,
          file: dfDisplay,
          key,
          args: { ...defaults.args, ...stringMap(recordOr(v.args)) },
          target: typeof v.target === 'string' ? v.target : undefined,
          platform,
          imageKeys: keys,
          allow: Array.isArray(v.allow) ? stringList(v.allow) : [],
        });
        this.problems.push(...compiled.problems);
        for (const st of compiled.stages) {
          const stepLocs = st.stepLines.map((line) => ({ file: dfDisplay, line }));
          if (st.final) {
            from = st.from;
            steps = [...st.steps];
            stepPaths = stepLocs;
            entrypoint = st.entrypoint ? [...st.entrypoint] : undefined;
            cmd = st.cmd ? [...st.cmd] : undefined;
          } else {
            await this.checkCopySources(st.key, context, st.steps, stepLocs);
            extra.push(
              stageImage({
                key: st.key,
                from: st.from,
                context,
                dockerfile,
                steps: st.steps,
                entrypoint: st.entrypoint,
                cmd: st.cmd,
                platform,
                location: { file: dfDisplay, line: st.line, col: 1 },
              }),
            );
          }
        }
      }
    } else {
      if (v.from === undefined) {
        this.at(p, `image "${key}" needs "from" (an image of this file, a reference, scratch, { rootfs } or { archive }) or "dockerfile"`);
      } else if (typeof v.from === 'string') {
        const r = this.resolveName(v.from, keys, key);
        if (r.problem) this.at([...p, 'from'], `from: ${r.problem}`);
        if (r.base) from = r.base;
      } else if (isRecord(v.from)) {
        from = await this.localBase(p, v.from);
      }
      const rawSteps = Array.isArray(v.steps) ? (v.steps as Raw[]) : [];
      for (const [i, rs] of rawSteps.entries()) {
        const r = stepFromYaml(rs, {
          specDir: this.dir,
          resolveFrom: (name) => {
            const res = this.resolveName(name, keys, key);
            return res.base && res.base.kind !== 'scratch' && res.base.kind !== 'rootfs' && res.base.kind !== 'archive' ? (res.base as CopyFrom) : undefined;
          },
        });
        if ('problem' in r) {
          const res = typeof rs.from === 'string' && r.key === 'from' ? this.resolveName(rs.from, keys, key) : undefined;
          this.at([...p, 'steps', i, r.key], res?.problem ? `copy from: ${res.problem}` : r.problem);
          continue;
        }
        steps.push(r.step);
        stepPaths.push([...p, 'steps', i]);
      }
      const shell = [...steps].reverse().find((s) => s.kind === 'shell');
      const argvOf = (c: unknown): string[] | undefined => (typeof c === 'string' ? [...(shell?.kind === 'shell' ? shell.argv : DEFAULT_SHELL), c] : Array.isArray(c) ? c.map(String) : undefined);
      entrypoint = argvOf(v.entrypoint);
      cmd = argvOf(v.cmd);
    }
    if (typeof v.dockerfile === 'string' && (v.entrypoint !== undefined || v.cmd !== undefined)) {
      const shellOf = (c: unknown) => (typeof c === 'string' ? [...DEFAULT_SHELL, c] : Array.isArray(c) ? c.map(String) : undefined);
      entrypoint = v.entrypoint !== undefined ? shellOf(v.entrypoint) : entrypoint;
      cmd = v.cmd !== undefined ? shellOf(v.cmd) : cmd;
    }
    await this.checkCopySources(key, context, steps, stepPaths);

    const repository = typeof v.repository === 'string' ? v.repository : key;
    const tags = await this.tags(p, v, repository);
    const push = Array.isArray(v.push) ? stringList(v.push) : defaults.push;
    const targets: TargetSpec[] = [];
    for (const [i, r] of push.entries()) {
      const reg = registries[r];
      if (!reg) {
        if (Array.isArray(v.push)) this.at([...p, 'push', i], `registry "${r}" is not declared under "registries"${didYouMean(r, Object.keys(registries))}`);
        continue;
      }
      for (const tag of tags) {
        const where: JsonPath = [...p, 'repository' in v ? 'repository' : 'push'];
        const ref = this.parsedReference(`${reg.url}/${repository}:${tag}`, where);
        if (ref) targets.push({ registry: r, ref });
      }
    }
    const localRefs = tags.flatMap((t) => this.reference(`${repository}:${t}`, [...p, 'repository' in v ? 'repository' : 'tags']) ?? []);
    const image: ImageSpec = {
      key,
      from,
      context,
      dockerfile,
      steps,
      entrypoint,
      cmd,
      labels: { ...defaults.labels, ...stringMap(recordOr(v.labels)) },
      annotations: { ...defaults.annotations, ...stringMap(recordOr(v.annotations)) },
      platform,
      repository,
      tags,
      targets,
      localRefs,
      push,
      watchTags: Array.isArray(v.watchTags) ? stringList(v.watchTags) : defaults.watchTags,
      intermediate: false,
      location,
    };
    return [...extra, image];
  }

  /** `s` parsed, or undefined with a problem at `path`: where the spec's references are parsed, once. */
  private parsedReference(s: string, path: JsonPath): ParsedReference | undefined {
    try {
      return parseReference(s);
    } catch (e) {
      this.at(path, (e as Error).message);
      return undefined;
    }
  }

  private reference(s: string, path: JsonPath): string | undefined {
    return this.parsedReference(s, path)?.toString();
  }

  private async localBase(p: JsonPath, f: Raw): Promise<BaseSpec> {
    const kind = typeof f.rootfs === 'string' ? 'rootfs' : 'archive';
    const rel = String(f[kind]);
    const path = this.resolvePath(rel);
    const found = await this.ports.fs.stat(path);
    if (!found) this.at([...p, 'from', kind], `${kind} ${rel} does not exist`);
    else if (kind === 'archive' && found !== 'file') this.at([...p, 'from', kind], `archive ${rel} is not a file`);
    return { kind, path };
  }

  private async tags(p: JsonPath, v: Raw, repository: string): Promise<string[]> {
    const templates = Array.isArray(v.tags) ? (v.tags as unknown[]).map(String) : ['latest'];
    const git = templates.some(usesGit) ? await this.gitInfo() : undefined;
    const out: string[] = [];
    for (const [i, t] of templates.entries()) {
      const r = renderTemplate(t, { env: this.ports.env, git, now: this.ports.now() });
      const path = Array.isArray(v.tags) ? [...p, 'tags', i] : p;
      if (!r.ok) {
        this.at(path, `tag "${t}": ${r.message}`);
      } else if (!isValidTag(r.value)) {
        this.at(path, `tag "${t}" renders to "${r.value}", which is not a valid tag (1–128 of letters, digits, _ . -, not starting with . or -)`);
      } else if (isStateTag(r.value)) {
        this.at(path, `tag "${r.value}" is reserved: tags starting with ${STATE_TAG_PREFIX} hold dimg's ownership records (see "Prune and ownership" in docs/commands/plan.md); choose another tag`);
      } else if (out.includes(r.value)) {
        this.at(path, `tag "${r.value}" is listed twice for ${repository}`);
      } else {
        out.push(r.value);
      }
    }
    return out;
  }

  private async checkCopySources(key: string, context: string | undefined, steps: readonly Step[], where: readonly (JsonPath | { file: string; line: number })[]): Promise<void> {
    let ignore: Awaited<ReturnType<typeof contextIgnore>> | undefined;
    for (const [i, step] of steps.entries()) {
      if ((step.kind !== 'copy' && step.kind !== 'add') || step.from) continue;
      const loc = where[i]!;
      const report = (m: string) => {
        if ('file' in loc) this.problems.push({ file: loc.file, line: loc.line, col: 1, message: m });
        else this.at(loc, m);
      };
      if (!context) {
        report(`image "${key}": a ${step.kind} step needs a "context" directory to copy from`);
        continue;
      }
      if ((await this.ports.fs.stat(context)) !== 'dir') continue;
      if (!ignore) {
        ignore = await contextIgnore(this.ports.fs, context);
        if (ignore.error) report(`${displayPath(posix.join(context, ignore.file!), this.ports.cwd)}: ${ignore.error}`);
      }
      for (const m of await copySourceProblems(this.ports.fs, context, step, ignore)) report(m.replace(context, displayPath(context, this.ports.cwd)));
    }
  }

  /** Two images may not claim the same local name or the same registry reference. */
  private checkClaims(images: readonly ImageSpec[]): void {
    const claimed = new Map<string, ImageSpec>();
    const reported = new Set<string>();
    for (const img of images) {
      const claims = [
        ...img.localRefs.map((ref, i) => ({ ref, what: `${ref} in the local store`, tag: i })),
        ...img.targets.map((t) => ({ ref: String(t.ref), what: String(t.ref), tag: img.tags.indexOf(t.ref.tag!) })),
      ];
      for (const c of claims) {
        const prev = claimed.get(c.ref);
        if (!prev) {
          claimed.set(c.ref, img);
          continue;
        }
        // One message per clashing tag is enough (the local clash implies the registry ones).
        const pair = `${prev.key}\0${img.key}\0${c.tag}`;
        if (prev.key === img.key || reported.has(pair)) continue;
        reported.add(pair);
        this.claim(img, c.tag, c.what, prev);
      }
    }
  }

  private claim(img: ImageSpec, tagIndex: number, what: string, prev: ImageSpec): void {
    const where = `${prev.location.file}:${prev.location.line}:${prev.location.col}`;
    this.at(['images', img.key, 'tags', Math.max(0, tagIndex)], `image "${img.key}" claims ${what}, already claimed by image "${prev.key}" (${where})`);
  }

  private order(images: ImageSpec[]): ImageSpec[] {
    const deps = (img: ImageSpec): string[] => {
      const d: string[] = [];
      if (img.from.kind === 'image') d.push(img.from.key);
      for (const s of img.steps) if ((s.kind === 'copy' || s.kind === 'add') && s.from?.kind === 'image') d.push(s.from.key);
      return d;
    };
    const { order, cycles } = orderGraph(images.map((i) => ({ key: i.key, deps: deps(i) })));
    for (const cycle of cycles) {
      const first = cycle[0]!.split('~')[0]!;
      this.at(['images'], `images form a cycle: ${cycle.join(' -> ')}`, first);
    }
    const byKey = new Map(images.map((i) => [i.key, i]));
    return order.map((k) => byKey.get(k)!);
  }
}

function isRecord(v: unknown): v is Raw {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function recordOr(v: unknown): Raw {
  return isRecord(v) ? v : {};
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}

/** The project name when the file gives none: its directory's name, made a valid project name. */
export function defaultProject(dir: string): string {
  const s = posix.basename(dir).toLowerCase().replace(/[^a-z0-9._-]+/g, '-').replace(/^[^a-z0-9]+/, '');
  return s.slice(0, 64) || 'default';
}

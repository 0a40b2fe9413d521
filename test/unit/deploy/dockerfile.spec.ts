import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, posix } from 'node:path';

import { Copy, DockerfileParser, Env, Healthcheck, Instruction } from 'dockerfile-ast';

/**
 * The container image (Dockerfile, .dockerignore) checked without a container engine (none runs
 * in CI, and no base image can be pulled): the Dockerfile is parsed and held to the rules the
 * issue sets, and every rule is shown to reject a Dockerfile that breaks it. The PID-1 behaviour
 * itself is tested by test/e2e/pid1.e2e-spec.ts.
 */

const REPO_ROOT = join(__dirname, '..', '..', '..');
const DOCKERFILE = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8');

/** What the image must be: the runtime base, its user, and what it runs. */
const RUNTIME_IMAGE = { name: 'node', tag: '22-bookworm-slim' };
const ENTRYPOINT = ['tini', '--'];
/**
 * A young generation of at most 2 × 2 MiB: without it V8 grows it to 32 MiB while the first
 * thousand WebSockets open, so they cost twice what later ones do, and Portico rests 13 MiB
 * higher (docs/operations.md, "Memory"; docs/benchmarks.md, idle). `npm start` runs the same.
 */
const CMD = ['node', '--max-semi-space-size=2', 'dist/main.js'];
const HEALTHCHECK = ['node', 'scripts/healthcheck.js'];
/** The image's configuration; test/unit/deploy/kubernetes.spec.ts relies on the same values. */
const IMAGE_ENV: Readonly<Record<string, string>> = {
  NODE_ENV: 'production',
  HOST: '0.0.0.0',
  PORT: '8080',
  DATA_DIR: '/var/lib/portico',
  PLUGINS_DIR: '/app/plugins',
};

/** One stage: its FROM and the instructions up to the next FROM. */
interface Stage {
  readonly index: number;
  /** `AS <name>`, lower-cased (Docker compares stage names case-insensitively). */
  readonly name: string | undefined;
  readonly image: string;
  readonly instructions: readonly Instruction[];
}

function stagesOf(text: string): Stage[] {
  const stages: (Stage & { instructions: Instruction[] })[] = [];
  for (const instruction of DockerfileParser.parse(text).getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const args = instruction.getArguments().map((a) => a.getValue());
      const as = args.findIndex((a) => a.toUpperCase() === 'AS');
      stages.push({
        index: stages.length,
        name: as === -1 ? undefined : args[as + 1]?.toLowerCase(),
        image: args.filter((a) => !a.startsWith('--'))[0] ?? '',
        instructions: [],
      });
    } else {
      stages[stages.length - 1]?.instructions.push(instruction);
    }
  }
  return stages;
}

const keyword = (stage: Stage, kw: string): Instruction[] =>
  stage.instructions.filter((i) => i.getKeyword() === kw);

/** The shell commands of a stage's RUN instructions, line continuations joined. */
const runs = (stage: Stage): string[] =>
  keyword(stage, 'RUN').map((i) => (i.getArgumentsContent() ?? '').replace(/\s+/g, ' '));

/** Every `npm ci` / `npm install` in a command, with its options. */
function npmInstalls(command: string): { verb: string; options: string[] }[] {
  return [...command.matchAll(/\bnpm\s+(ci|install|i|clean-install)\b([^;&|)]*)/g)].map((m) => ({
    verb: m[1] as string,
    options: (m[2] as string).trim().split(/\s+/).filter(Boolean),
  }));
}

const isProductionOnly = (options: readonly string[]): boolean =>
  options.includes('--omit=dev') || options.includes('--production');

/** The exec form of CMD/ENTRYPOINT/HEALTHCHECK CMD (a JSON array of strings), else undefined. */
function execForm(args: string): string[] | undefined {
  try {
    const parsed: unknown = JSON.parse(args);
    return Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')
      ? (parsed as string[])
      : undefined;
  } catch {
    return undefined; // shell form: run by /bin/sh -c, which would be PID 1
  }
}

/** `COPY --from=<value>` (dockerfile-ast's getFromFlag() sees it only when it is the one flag). */
const fromFlag = (copy: Copy): string | undefined =>
  copy
    .getFlags()
    .find((f) => f.getName() === 'from')
    ?.getValue() ?? undefined;

/** The stage a `COPY --from=` names: an earlier stage by name or index. */
function sourceStage(stages: readonly Stage[], copy: Copy, before: Stage): Stage | undefined {
  const from = fromFlag(copy)?.toLowerCase();
  if (from === undefined) return undefined;
  return stages.find(
    (s) => s.index < before.index && (s.name === from || String(s.index) === from),
  );
}

/** The last value of a variable the ENV instructions of a stage set. */
function envOf(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const i of keyword(stage, 'ENV'))
    for (const p of (i as Env).getProperties()) env.set(p.getName(), p.getValue() ?? '');
  return env;
}

/**
 * Every rule the image must follow, as a list of problems (empty: the Dockerfile is fine). Each
 * problem starts with the rule's name, which the mutation table below expects.
 */
function dockerfileProblems(text: string): string[] {
  const problems: string[] = [];
  const stages = stagesOf(text);
  const runtime = stages[stages.length - 1];
  if (runtime === undefined) return ['stages: no FROM'];
  if (stages.length < 2) problems.push('stages: a build stage and a runtime stage are needed');

  // Build stage: the app's own RUN steps (not the plugin loop's): dev dependencies from the
  // lockfile, then the TypeScript build.
  const appInstall = (r: string): boolean => {
    const first = npmInstalls(r)[0];
    return r.startsWith('npm ci') && first !== undefined && !isProductionOnly(first.options);
  };
  const appBuild = (r: string): boolean => /^npm run build( &&|$)/.test(r);
  const builders = stages.filter((s) => s !== runtime && runs(s).some(appInstall));
  const build = builders.find((s) => {
    const steps = runs(s);
    const built = steps.findIndex(appBuild);
    return built > steps.findIndex(appInstall);
  });
  if (builders.length === 0)
    problems.push('build: no stage before the runtime runs `npm ci` with dev dependencies');
  if (build === undefined)
    problems.push('build: no stage before the runtime runs `npm ci`, then `npm run build`');

  // Bundled plugins with a package.json are installed and built in the image.
  const pluginLoop = stages
    .filter((s) => s !== runtime)
    .flatMap(runs)
    .find((r) => /for \w+ in plugins\/\*\/?;/.test(r) && r.includes('package.json'));
  if (
    pluginLoop === undefined ||
    !/npm ci --omit=dev\b/.test(pluginLoop) ||
    !/npm run build --if-present\b/.test(pluginLoop)
  )
    problems.push(
      'plugins: no loop over plugins/*/ runs `npm ci --omit=dev` and `npm run build --if-present` for a plugin with a package.json',
    );

  // Runtime base image.
  const [name, tagAndDigest] = runtime.image.split(':');
  const tag = tagAndDigest?.split('@')[0];
  if (name !== RUNTIME_IMAGE.name || tag !== RUNTIME_IMAGE.tag)
    problems.push(
      `runtime-base: FROM ${runtime.image}, not ${RUNTIME_IMAGE.name}:${RUNTIME_IMAGE.tag}`,
    );

  // Production dependencies only: node_modules comes from a stage that ran `npm ci --omit=dev`
  // and nothing else; the runtime stage installs nothing itself.
  const runtimeInstalls = runs(runtime).flatMap(npmInstalls);
  if (runtimeInstalls.length > 0)
    problems.push(`production-deps: the runtime stage runs npm ${runtimeInstalls[0]?.verb}`);
  const copies = keyword(runtime, 'COPY') as Copy[];
  const modulesCopies = copies.filter((c) =>
    c.getArguments().some((a) => /(^|\/)node_modules\/?$/.test(a.getValue())),
  );
  if (modulesCopies.length !== 1) {
    problems.push(`production-deps: ${modulesCopies.length} COPY of node_modules, expected one`);
  }
  for (const copy of modulesCopies) {
    const from = sourceStage(stages, copy, runtime);
    const installs = from === undefined ? [] : runs(from).flatMap(npmInstalls);
    if (
      from === undefined ||
      installs.length !== 1 ||
      installs[0]?.verb !== 'ci' ||
      !installs[0].options.includes('--omit=dev')
    )
      problems.push(
        'production-deps: node_modules is not copied from a stage whose one install is `npm ci --omit=dev`',
      );
  }
  // A stage copied into the runtime must not carry the build's (dev) node_modules along.
  for (const copy of copies) {
    const from = sourceStage(stages, copy, runtime);
    if (from !== undefined && runs(from).some((r) => /\bcp\b[^;&|]*\bnode_modules\b/.test(r)))
      problems.push(
        `production-deps: stage ${from.name ?? from.index} copies a node_modules into what the runtime takes`,
      );
  }

  // tini, from Debian, in the runtime stage.
  if (!runs(runtime).some((r) => /\bapt-get (-\S+ )*install\b[^;&|]*\stini\b/.test(r)))
    problems.push('tini: the runtime stage does not install tini with apt-get');

  // A numeric, non-root user.
  const user = keyword(runtime, 'USER').pop()?.getArgumentsContent() ?? '';
  const uid = /^(\d+)(?::(\d+))?$/.exec(user.trim());
  if (uid === null) problems.push(`user: USER "${user}" is not numeric (uid or uid:gid)`);
  else if (Number(uid[1]) === 0 || uid[2] === '0') problems.push(`user: USER ${user} is root`);

  // PID 1: tini, exec form, running node directly.
  const entrypoint = execForm(keyword(runtime, 'ENTRYPOINT').pop()?.getArgumentsContent() ?? '');
  if (JSON.stringify(entrypoint) !== JSON.stringify(ENTRYPOINT))
    problems.push(`entrypoint: not the exec form ${JSON.stringify(ENTRYPOINT)}`);
  const cmd = execForm(keyword(runtime, 'CMD').pop()?.getArgumentsContent() ?? '');
  if (JSON.stringify(cmd) !== JSON.stringify(CMD))
    problems.push(`cmd: not the exec form ${JSON.stringify(CMD)}`);
  for (const stage of stages)
    for (const i of [
      ...keyword(stage, 'CMD'),
      ...keyword(stage, 'ENTRYPOINT'),
      ...keyword(stage, 'HEALTHCHECK'),
    ]) {
      const args = i.getArgumentsContent() ?? '';
      const words = execForm(args.replace(/^CMD\s+/i, '')) ?? args.split(/\s+/);
      if (words.some((w) => /\bnpm\b/.test(w)))
        problems.push(
          `npm-start: ${i.getKeyword()} runs npm (it would be PID 1 or its only child)`,
        );
    }

  // Health check: the script, exec form.
  const healthcheck = keyword(runtime, 'HEALTHCHECK').pop() as Healthcheck | undefined;
  const probe = execForm((healthcheck?.getArgumentsContent() ?? '').replace(/^CMD\s+/i, ''));
  if (healthcheck?.getSubcommand()?.getValue().toUpperCase() !== 'CMD' || probe === undefined)
    problems.push('healthcheck: no HEALTHCHECK CMD in exec form');
  else if (JSON.stringify(probe) !== JSON.stringify(HEALTHCHECK))
    problems.push(`healthcheck: runs ${JSON.stringify(probe)}, not ${JSON.stringify(HEALTHCHECK)}`);

  // Configuration and the one writable folder.
  const env = envOf(runtime);
  for (const [key, value] of Object.entries(IMAGE_ENV))
    if (env.get(key) !== value)
      problems.push(`env: ${key} is ${env.get(key) ?? 'unset'}, not ${value}`);
  const dataDir = env.get('DATA_DIR') ?? '';
  const owner = uid === null ? undefined : `${uid[1]}:${uid[2] ?? uid[1]}`;
  const chowned = runs(runtime).some(
    (r) =>
      owner !== undefined &&
      r.includes(`chown ${owner} ${dataDir}`) &&
      r.includes(`mkdir -p ${dataDir}`),
  );
  if (dataDir === '' || !chowned)
    problems.push(
      `data-dir: the runtime stage does not create DATA_DIR owned by ${owner ?? 'the USER'}`,
    );
  const workdir = keyword(runtime, 'WORKDIR').pop()?.getArgumentsContent();
  if (workdir !== '/app' || !(env.get('PLUGINS_DIR') ?? '').startsWith('/app/'))
    problems.push(
      'read-only-app: the app and PLUGINS_DIR are not under /app (plugins resolve /app/node_modules)',
    );

  // The app is root's: readable, never writable, for the runtime user.
  for (const copy of copies) {
    const chown = copy
      .getFlags()
      .find((f) => f.getName() === 'chown')
      ?.getValue();
    if (chown !== '0:0' && chown !== 'root:root')
      problems.push(`read-only-app: COPY ${copy.getArgumentsContent()} is not --chown=0:0`);
    const from = sourceStage(stages, copy, runtime);
    if (from === undefined || !runs(from).some((r) => /\bchmod -R u=rwX,go=rX\b/.test(r)))
      problems.push(
        `read-only-app: COPY ${copy.getArgumentsContent()} takes files whose modes no stage set to u=rwX,go=rX`,
      );
  }
  return problems;
}

/** One .dockerignore line: a pattern as Docker reads it (moby/patternmatcher). */
interface IgnoreRule {
  readonly negate: boolean;
  readonly pattern: RegExp;
}

function parseDockerignore(text: string): IgnoreRule[] {
  const rules: IgnoreRule[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1).trim();
    line = posix.normalize(line.replace(/^\/+/, '')).replace(/\/+$/, '');
    let source = '';
    for (let i = 0; i < line.length; i++) {
      const c = line[i] as string;
      if (line.startsWith('**/', i)) {
        source += '(?:.*/)?';
        i += 2;
      } else if (line.startsWith('**', i)) {
        source += '.*';
        i += 1;
      } else if (c === '*') source += '[^/]*';
      else if (c === '?') source += '[^/]';
      else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
    }
    rules.push({ negate, pattern: new RegExp(`^${source}$`) });
  }
  return rules;
}

/** Whether Docker leaves `path` out of the context: the last rule matching it or a parent wins. */
function isIgnored(rules: readonly IgnoreRule[], path: string): boolean {
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (rule.negate !== ignored) continue; // only a rule that could change the verdict counts
    if (prefixes.some((p) => rule.pattern.test(p))) ignored = !rule.negate;
  }
  return ignored;
}

/** Every file below a folder of the repo, as repo-relative paths. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })) {
    const path = posix.join(dir, entry.name);
    // Installed modules and build output (made in the image) are not sources to copy.
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else out.push(path);
  }
  return out;
}

/** What must never be in the build context: local state, build output, installed modules. */
const NEVER_IN_CONTEXT = [
  'node_modules/ws/package.json',
  'dist/main.js',
  'data/dev-keys.json',
  'data/secrets.enc.json',
  '.git/HEAD',
  '.env',
  'plugins/echo/node_modules/ws/index.js',
  'console/dist/app.js',
  'plugins/web-terminal/dist/index.js',
];

/**
 * The build context against the Dockerfile: every path a COPY takes from the context exists in
 * the repo and is not left out by .dockerignore, and what must stay out does.
 */
function contextProblems(dockerfile: string, dockerignore: string): string[] {
  const problems: string[] = [];
  const rules = parseDockerignore(dockerignore);
  for (const stage of stagesOf(dockerfile))
    for (const copy of keyword(stage, 'COPY') as Copy[]) {
      if (fromFlag(copy) !== undefined) continue;
      const sources = copy
        .getArguments()
        .map((a) => a.getValue())
        .slice(0, -1);
      for (const source of sources) {
        const path = posix.normalize(source).replace(/\/+$/, '');
        if (!existsSync(join(REPO_ROOT, path))) {
          problems.push(`copy: ${source} does not exist in the repo`);
          continue;
        }
        const files = statSync(join(REPO_ROOT, path)).isDirectory() ? filesUnder(path) : [path];
        // Test files are left out on purpose; everything else a folder holds is needed.
        const missing = files.filter((f) => !f.endsWith('.spec.ts') && isIgnored(rules, f));
        if (isIgnored(rules, path) || missing.length > 0)
          problems.push(`copy: ${source} is excluded by .dockerignore (${missing[0] ?? path})`);
      }
    }
  for (const path of NEVER_IN_CONTEXT)
    if (!isIgnored(rules, path)) problems.push(`dockerignore: ${path} is in the build context`);
  return problems;
}

describe('Dockerfile', () => {
  it('follows every rule for the image', () => {
    expect(dockerfileProblems(DOCKERFILE)).toEqual([]);
  });

  it('runs Portico with the same Node flags as `npm start`', () => {
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(pkg.scripts.start?.split(/\s+/)).toEqual(CMD);
  });

  it('has a build stage, a deps stage and the runtime stage, in that order', () => {
    expect(stagesOf(DOCKERFILE).map((s) => [s.name, s.image])).toEqual([
      ['build', 'node:22-bookworm-slim'],
      ['deps', 'node:22-bookworm-slim'],
      ['runtime', 'node:22-bookworm-slim'],
    ]);
  });

  /** A change that breaks one rule, and the problem the checker must report for it. */
  const mutations: [string, (d: string) => string, RegExp][] = [
    [
      'only the runtime stage',
      (d) => d.slice(d.indexOf('FROM node:22-bookworm-slim AS runtime')),
      /^stages:/,
    ],
    [
      'the build installs without dev dependencies',
      (d) => d.replace('RUN npm ci --no-audit --no-fund', 'RUN npm ci --omit=dev'),
      /^build: .*dev dependencies/,
    ],
    [
      'no `npm run build`',
      (d) => d.replace('RUN npm run build', 'RUN true'),
      /^build: .*then `npm run build`/,
    ],
    [
      'the build before the install',
      (d) =>
        d
          .replace('RUN npm ci --no-audit --no-fund\n', '')
          .replace('RUN npm run build\n', 'RUN npm run build\nRUN npm ci --no-audit --no-fund\n'),
      /^build: .*then `npm run build`/,
    ],
    ['plugins are not built', (d) => d.replace('npm run build --if-present', 'true'), /^plugins:/],
    [
      'plugins keep dev dependencies',
      (d) => d.replace('&& npm ci --omit=dev --no-audit --no-fund);', ');'),
      /^plugins:/,
    ],
    [
      'a full Debian runtime base',
      (d) => d.replace('FROM node:22-bookworm-slim AS runtime', 'FROM node:22-bookworm AS runtime'),
      /^runtime-base:/,
    ],
    [
      'Node 20 at runtime',
      (d) =>
        d.replace('FROM node:22-bookworm-slim AS runtime', 'FROM node:20-bookworm-slim AS runtime'),
      /^runtime-base:/,
    ],
    [
      'deps installs dev dependencies too',
      (d) =>
        d.replace(
          'RUN npm ci --omit=dev --no-audit --no-fund \\\n && chmod',
          'RUN npm ci --no-audit --no-fund \\\n && chmod',
        ),
      /^production-deps: node_modules is not copied/,
    ],
    [
      'node_modules from the build stage',
      (d) =>
        d.replace(
          'COPY --from=deps --chown=0:0 /app/node_modules',
          'COPY --from=build --chown=0:0 /src/node_modules',
        ),
      /^production-deps: node_modules is not copied/,
    ],
    [
      'the runtime stage installs',
      (d) => d.replace('USER 10001:10001', 'RUN npm install\nUSER 10001:10001'),
      /^production-deps: the runtime stage runs npm install/,
    ],
    [
      'the build tree takes node_modules along',
      (d) => d.replace('cp -R dist plugins', 'cp -R dist node_modules plugins'),
      /^production-deps: stage build copies a node_modules/,
    ],
    [
      'no node_modules at all',
      (d) => d.replace(/^COPY --from=deps.*\n/m, ''),
      /^production-deps: 0 COPY of node_modules/,
    ],
    [
      'no tini',
      (d) => d.replace('--no-install-recommends tini', '--no-install-recommends ca-certificates'),
      /^tini:/,
    ],
    ['a named user', (d) => d.replace('USER 10001:10001', 'USER portico'), /^user: .*not numeric/],
    ['root', (d) => d.replace('USER 10001:10001', 'USER 0'), /^user: USER 0 is root/],
    ['the root group', (d) => d.replace('USER 10001:10001', 'USER 10001:0'), /^user: .*is root/],
    ['no USER', (d) => d.replace('USER 10001:10001\n', ''), /^user: .*not numeric/],
    [
      'ENTRYPOINT in shell form',
      (d) => d.replace('ENTRYPOINT ["tini", "--"]', 'ENTRYPOINT tini --'),
      /^entrypoint:/,
    ],
    ['no ENTRYPOINT', (d) => d.replace('ENTRYPOINT ["tini", "--"]\n', ''), /^entrypoint:/],
    [
      'node as PID 1',
      (d) => d.replace('ENTRYPOINT ["tini", "--"]', 'ENTRYPOINT ["node"]'),
      /^entrypoint:/,
    ],
    [
      'CMD in shell form',
      (d) =>
        d.replace(
          'CMD ["node", "--max-semi-space-size=2", "dist/main.js"]',
          'CMD node --max-semi-space-size=2 dist/main.js',
        ),
      /^cmd:/,
    ],
    [
      'CMD npm start',
      (d) =>
        d.replace(
          'CMD ["node", "--max-semi-space-size=2", "dist/main.js"]',
          'CMD ["npm", "start"]',
        ),
      /^npm-start: CMD/,
    ],
    [
      'ENTRYPOINT npm start',
      (d) => d.replace('ENTRYPOINT ["tini", "--"]', 'ENTRYPOINT ["tini", "--", "npm", "start"]'),
      /^npm-start: ENTRYPOINT/,
    ],
    [
      'CMD npm start in shell form',
      (d) => d.replace('CMD ["node", "--max-semi-space-size=2", "dist/main.js"]', 'CMD npm start'),
      /^npm-start: CMD/,
    ],
    [
      'no HEALTHCHECK',
      (d) => d.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, ''),
      /^healthcheck: no HEALTHCHECK/,
    ],
    [
      'HEALTHCHECK NONE',
      (d) => d.replace(/^HEALTHCHECK[^\n]*\\\n[^\n]*\n/m, 'HEALTHCHECK NONE\n'),
      /^healthcheck: no HEALTHCHECK/,
    ],
    [
      'a HEALTHCHECK calling curl',
      (d) =>
        d.replace(
          'CMD ["node", "scripts/healthcheck.js"]',
          'CMD ["curl", "-f", "http://127.0.0.1:8080/healthz"]',
        ),
      /^healthcheck: runs \["curl"/,
    ],
    [
      'no DATA_DIR',
      (d) => d.replace('DATA_DIR=/var/lib/portico \\\n', ''),
      /^env: DATA_DIR is unset/,
    ],
    [
      'not production',
      (d) => d.replace('NODE_ENV=production', 'NODE_ENV=development'),
      /^env: NODE_ENV is development/,
    ],
    [
      'DATA_DIR owned by root',
      (d) => d.replace('chown 10001:10001 /var/lib/portico', 'chown 0:0 /var/lib/portico'),
      /^data-dir:/,
    ],
    [
      'app files owned by the runtime user',
      (d) => d.replace('COPY --from=build --chown=0:0', 'COPY --from=build --chown=10001:10001'),
      /^read-only-app: COPY \/app \.\/ is not --chown=0:0/,
    ],
    [
      'app files keep their build modes',
      (d) => d.replace(' \\\n && chmod -R u=rwX,go=rX /app', ''),
      /^read-only-app: COPY \/app \.\/ takes files/,
    ],
    [
      'plugins outside /app',
      (d) => d.replace('PLUGINS_DIR=/app/plugins', 'PLUGINS_DIR=/plugins'),
      /^read-only-app: the app and PLUGINS_DIR/,
    ],
  ];

  it.each(mutations)('a Dockerfile with %s is rejected', (_what, mutate, problem) => {
    const mutated = mutate(DOCKERFILE);
    expect(mutated).not.toBe(DOCKERFILE); // the mutation still applies to this Dockerfile
    expect(dockerfileProblems(mutated)).toContainEqual(expect.stringMatching(problem));
  });
});

describe('.dockerignore and the build context', () => {
  it('holds every path the Dockerfile copies, and none of node_modules, dist, data, .git', () => {
    expect(contextProblems(DOCKERFILE, DOCKERIGNORE)).toEqual([]);
  });

  it.each([
    ['node_modules', 'node_modules/ws/index.js'],
    ['dist', 'dist/main.js'],
    ['data', 'data/dev-keys.json'],
    ['.git', '.git/config'],
    ['a plugin’s node_modules', 'plugins/echo/node_modules/x/index.js'],
  ])('leaves out %s', (_what, path) => {
    expect(isIgnored(parseDockerignore(DOCKERIGNORE), path)).toBe(true);
  });

  it('reads patterns as Docker does: the last match wins, a folder covers what is inside', () => {
    const rules = parseDockerignore('*\n!src\n**/node_modules\n/docs/*.md\n!docs/keep.md\n');
    const verdicts = Object.fromEntries(
      [
        'README.md',
        'src/main.ts',
        'src/a/b.ts',
        'src/node_modules/x.js',
        'node_modules',
        'docs/a.md',
        'docs/keep.md',
        'srcs/x.ts',
      ].map((p) => [p, isIgnored(rules, p)]),
    );
    expect(verdicts).toEqual({
      'README.md': true,
      'src/main.ts': false,
      'src/a/b.ts': false,
      'src/node_modules/x.js': true,
      node_modules: true,
      'docs/a.md': true,
      'docs/keep.md': false,
      'srcs/x.ts': true,
    });
  });

  const contextMutations: [string, (d: string) => string, (i: string) => string, RegExp][] = [
    ['src left out', (d) => d, (i) => i.replace('!src\n', ''), /^copy: src is excluded/],
    [
      'a single file left out',
      (d) => d,
      (i) => `${i}src/main.ts\n`,
      /^copy: src is excluded by \.dockerignore \(src\/main\.ts\)/,
    ],
    [
      'the healthcheck script left out',
      (d) => d,
      (i) => i.replace('!scripts/healthcheck.js\n', ''),
      /^copy: scripts\/healthcheck\.js is excluded/,
    ],
    [
      'a COPY of a missing file',
      (d) => d.replace('COPY tsconfig.json', 'COPY tsconfig.json nest-cli.json'),
      (i) => i,
      /^copy: nest-cli\.json does not exist/,
    ],
    [
      'no catch-all',
      (d) => d,
      (i) => i.replace(/^\*\n/m, ''),
      /^dockerignore: data\/dev-keys\.json is in the build context/,
    ],
    [
      'node_modules allowed',
      (d) => d,
      (i) => i.replace('**/node_modules\n', ''),
      /^dockerignore: plugins\/echo\/node_modules/,
    ],
    ['.git allowed', (d) => d, (i) => `${i}!.git\n`, /^dockerignore: \.git\/HEAD/],
  ];

  it.each(contextMutations)(
    'a context with %s is rejected',
    (_what, mutateDf, mutateIgnore, problem) => {
      const [dockerfile, dockerignore] = [mutateDf(DOCKERFILE), mutateIgnore(DOCKERIGNORE)];
      expect(dockerfile + dockerignore).not.toBe(DOCKERFILE + DOCKERIGNORE);
      expect(contextProblems(dockerfile, dockerignore)).toContainEqual(
        expect.stringMatching(problem),
      );
    },
  );
});

describe('scripts/healthcheck.js (the image’s HEALTHCHECK)', () => {
  const servers: Server[] = [];

  afterEach(async () => {
    await Promise.all(
      servers.splice(0).map(
        (s) =>
          new Promise<void>((resolve) => {
            s.closeAllConnections();
            s.close(() => resolve());
          }),
      ),
    );
  });

  /** A real server on 127.0.0.1; `handle` answers (or not), every request path is recorded. */
  const serve = async (
    handle: (req: IncomingMessage, res: ServerResponse) => void,
  ): Promise<{ port: number; paths: string[] }> => {
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(`${req.method} ${req.url}`);
      handle(req, res);
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { port: (server.address() as AddressInfo).port, paths };
  };

  /** Runs the HEALTHCHECK's own command line, from the repo root as from the image's /app. */
  const probe = (env: Record<string, string>): Promise<{ code: number; stderr: string }> => {
    const healthcheck = stagesOf(DOCKERFILE)
      .pop()
      ?.instructions.find((i) => i.getKeyword() === 'HEALTHCHECK');
    const argv = execForm((healthcheck?.getArgumentsContent() ?? '').replace(/^CMD\s+/i, '')) ?? [];
    const [node, ...args] = argv;
    if (node !== 'node') throw new Error(`HEALTHCHECK runs ${String(node)}, not node`);
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        args,
        { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', ...env } },
        (err, _out, stderr) => resolve({ code: err === null ? 0 : Number(err.code), stderr }),
      );
    });
  };

  it('exits 0 when GET /healthz answers 200', async () => {
    const { port, paths } = await serve((req, res) => {
      res.statusCode = req.url === '/healthz' ? 200 : 404;
      res.end('{"status":"ok"}');
    });
    expect(await probe({ PORT: String(port) })).toEqual({ code: 0, stderr: '' });
    expect(paths).toEqual(['GET /healthz']);
  });

  it('asks 127.0.0.1 when the host listens on every interface (HOST=0.0.0.0)', async () => {
    const { port, paths } = await serve((_req, res) => res.end());
    expect((await probe({ PORT: String(port), HOST: '0.0.0.0' })).code).toBe(0);
    expect(paths).toEqual(['GET /healthz']);
  });

  it('exits 1 when /healthz answers anything but 200', async () => {
    const { port } = await serve((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    expect(await probe({ PORT: String(port) })).toEqual({
      code: 1,
      stderr: 'healthcheck: GET /healthz answered 503\n',
    });
  });

  it('exits 1 when the host accepts the connection but never answers', async () => {
    const { port, paths } = await serve(() => undefined);
    const result = await probe({ PORT: String(port), HEALTHCHECK_TIMEOUT_MS: '300' });
    expect(result).toEqual({ code: 1, stderr: 'healthcheck: no answer within 300 ms\n' });
    expect(paths).toEqual(['GET /healthz']);
  });

  it('exits 1 when nothing listens on the port', async () => {
    const { port } = await serve((_req, res) => res.end());
    await new Promise<void>((resolve) => servers.pop()?.close(() => resolve()));
    const result = await probe({ PORT: String(port) });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^healthcheck: connect ECONNREFUSED 127\.0\.0\.1:\d+\n$/);
  });
});

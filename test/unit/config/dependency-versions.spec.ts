import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The Nest monorepo packages are released together and share internals (the DI container,
 * metadata keys, `instanceof` checks across packages), so they are pinned to one release, and
 * the lockfile must hold a single copy of @nestjs/common and @nestjs/core: a second copy means
 * two module systems that do not recognise each other's providers.
 */
const NEST_MONOREPO = [
  '@nestjs/common',
  '@nestjs/core',
  '@nestjs/platform-express',
  '@nestjs/platform-ws',
  '@nestjs/websockets',
  '@nestjs/testing',
] as const;
/** Released on their own schedule; pinned exactly like everything else, at their own version. */
const NEST_SEPARATE = ['@nestjs/passport', '@nestjs/terminus'] as const;
const SINGLE_COPY = ['@nestjs/common', '@nestjs/core'] as const;

const EXACT_VERSION = /^\d+\.\d+\.\d+$/;

interface PackageJson {
  readonly dependencies?: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
}

interface PackageLock {
  readonly packages: Record<string, { readonly version?: string } | undefined>;
}

const ROOT = join(__dirname, '../../..');
const readJson = <T>(file: string): T => JSON.parse(readFileSync(join(ROOT, file), 'utf8')) as T;

describe('@nestjs/* versions (package.json and package-lock.json)', () => {
  const manifest = readJson<PackageJson>('package.json');
  const lock = readJson<PackageLock>('package-lock.json');
  const declared = (name: string): string | undefined =>
    manifest.dependencies?.[name] ?? manifest.devDependencies?.[name];
  const locked = (name: string): string | undefined =>
    lock.packages[`node_modules/${name}`]?.version;

  it('pins the six monorepo packages to one exact release', () => {
    const versions = NEST_MONOREPO.map((name) => [name, declared(name)] as const);
    for (const [, version] of versions) expect(version).toMatch(EXACT_VERSION);
    expect(new Set(versions.map(([, version]) => version))).toEqual(
      new Set([declared('@nestjs/common')]),
    );
  });

  it('pins @nestjs/passport and @nestjs/terminus to exact versions of the same major', () => {
    const major = declared('@nestjs/common')?.split('.')[0];
    for (const name of NEST_SEPARATE) {
      expect(declared(name)).toMatch(EXACT_VERSION);
      expect(declared(name)?.split('.')[0]).toBe(major);
    }
  });

  it('locks every @nestjs package at the version package.json declares', () => {
    for (const name of [...NEST_MONOREPO, ...NEST_SEPARATE]) {
      expect({ name, version: locked(name) }).toEqual({ name, version: declared(name) });
    }
  });

  it('holds one copy of @nestjs/common and @nestjs/core, none nested under another package', () => {
    const copies = Object.keys(lock.packages).filter((path) =>
      SINGLE_COPY.some(
        (name) => path === `node_modules/${name}` || path.endsWith(`/node_modules/${name}`),
      ),
    );
    expect(copies.sort()).toEqual(SINGLE_COPY.map((name) => `node_modules/${name}`).sort());
  });
});

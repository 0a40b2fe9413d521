import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { http } from '../helpers/http-client';
import { pluginsDirWith } from '../helpers/plugins-dir';
import { startTestApp, TestApp } from '../helpers/test-app';

/** The two API routes the console needs besides the plugins API: who am I, which projects. */
describe('/api/me and /api/projects', () => {
  let t: TestApp;
  let plugins: ReturnType<typeof pluginsDirWith>;
  let projects: string;

  beforeAll(async () => {
    projects = realpathSync(mkdtempSync(join(tmpdir(), 'portico-projects-')));
    for (const name of ['beta', 'alpha', '.hidden']) mkdirSync(join(projects, name));
    writeFileSync(join(projects, 'notes.txt'), 'a file is not a project');
    symlinkSync(join(projects, 'alpha'), join(projects, 'linked'));
    symlinkSync(join(projects, 'nowhere'), join(projects, 'dangling'));
    plugins = pluginsDirWith([]);
    t = await startTestApp({ pluginsDir: plugins.dir, env: { PROJECTS_DIR: projects } });
  });

  afterAll(async () => {
    await t?.close();
    plugins?.remove();
    rmSync(projects, { recursive: true, force: true });
  });

  it('/api/me says who the token names and whether they are an admin', async () => {
    const admin = await http(t.baseUrl, 'GET', '/api/me', { token: t.adminToken() });
    expect(admin.status).toBe(200);
    expect(admin.json).toMatchObject({ admin: true, roles: ['admin'] });
    const user = await http(t.baseUrl, 'GET', '/api/me', {
      token: t.token({ sub: 'bob', name: 'Bob', roles: ['ops'] }),
    });
    expect(user.json).toMatchObject({ id: 'bob', name: 'Bob', roles: ['ops'], admin: false });
    expect((user.json as { expiresAt: string }).expiresAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect((await http(t.baseUrl, 'GET', '/api/me')).status).toBe(401);
  });

  it('/api/projects lists the sub-folders of PROJECTS_DIR by name, real paths, no hidden or files', async () => {
    const res = await http(t.baseUrl, 'GET', '/api/projects', { token: t.token() });
    expect(res.status).toBe(200);
    expect(res.json).toEqual([
      { name: 'alpha', path: join(projects, 'alpha') },
      { name: 'beta', path: join(projects, 'beta') },
      { name: 'linked', path: join(projects, 'alpha') },
    ]);
    expect((await http(t.baseUrl, 'GET', '/api/projects')).status).toBe(401);
  });

  it.each(['/console/..%2Fpackage.json', '/console/.env', '/console/%2e%2e', '/console/a%00.js'])(
    '%s → 404, nothing outside the console build',
    async (path) => {
      const res = await http(t.baseUrl, 'GET', path);
      expect(res.status).toBe(404);
    },
  );
});

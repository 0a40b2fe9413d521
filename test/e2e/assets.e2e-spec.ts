import 'reflect-metadata';

import { randomBytes } from 'node:crypto';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { IncomingHttpHeaders, request } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

import { NestExpressApplication } from '@nestjs/platform-express';
import { Test } from '@nestjs/testing';

import { HttpPipelineModule } from '../../src/common/http-pipeline.module';
import { MetricsModule } from '../../src/metrics/metrics.module';
import { ConfigModule } from '../../src/config/config.module';
import { loadConfig } from '../../src/config/load-config';
import { AssetsModule } from '../../src/plugins/assets/assets.module';
import { PluginRegistry } from '../../src/plugins/manifest/plugin-registry.service';

const FIXTURES = resolve(__dirname, '../fixtures/assets-plugins');
const SECRET = 'TOP-SECRET-OUTSIDE-THE-PLUGIN';

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

describe('GET /api/plugins/:name/assets/*path', () => {
  let root: string;
  let pluginDir: string;
  let app: NestExpressApplication;
  let port: number;

  /** Raw HTTP, so that the path goes out exactly as written (fetch would normalise `..`). */
  function send(
    path: string,
    headers: Record<string, string> = {},
    method = 'GET',
  ): Promise<Reply> {
    return new Promise((done, fail) => {
      const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
        );
        res.on('error', fail);
      });
      req.on('error', fail);
      req.end();
    });
  }
  const asset = (rest: string, headers?: Record<string, string>): Promise<Reply> =>
    send(`/api/plugins/ui/assets/${rest}`, headers);
  const fixture = (rel: string): Buffer => readFileSync(join(pluginDir, rel));

  beforeAll(async () => {
    root = realpathSync(mkdtempSync(join(tmpdir(), 'portico-assets-')));
    const pluginsDir = join(root, 'plugins');
    cpSync(FIXTURES, pluginsDir, { recursive: true });
    pluginDir = join(pluginsDir, 'ui');
    writeFileSync(join(root, 'secret.txt'), SECRET);
    mkdirSync(join(root, 'outside-dir'));
    writeFileSync(join(root, 'outside-dir', 'secret.txt'), SECRET);
    symlinkSync(join(root, 'secret.txt'), join(pluginDir, 'link-out.txt'));
    symlinkSync('../../../secret.txt', join(pluginDir, 'sub', 'relative-out.txt'));
    symlinkSync(join(root, 'outside-dir'), join(pluginDir, 'dir-out'));
    symlinkSync('index.js', join(pluginDir, 'link-in.js'));

    const config = loadConfig({
      NODE_ENV: 'test',
      PLUGINS_DIR: pluginsDir,
      DATA_DIR: join(root, 'data'),
      JWT_SECRET: 'assets-e2e-secret-assets-e2e-secret-0123456789',
      SECRETS_KEY: randomBytes(32).toString('base64'),
    });
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), MetricsModule, HttpPipelineModule, AssetsModule],
    }).compile();
    app = moduleRef.createNestApplication<NestExpressApplication>({ logger: false });
    // As in bootstrap.ts, so that the route sees what it will see in production.
    app.set('etag', false);
    await app.init();
    await app.get(PluginRegistry).scan();
    await app.listen(0, '127.0.0.1');
    port = (app.getHttpServer().address() as AddressInfo).port;
  });

  afterAll(async () => {
    await app?.close();
    rmSync(root, { recursive: true, force: true });
  });

  describe('a file inside the plugin folder', () => {
    it('is streamed with its type, length, no-cache, a strong ETag and nosniff', async () => {
      const res = await asset('index.js');
      expect(res.status).toBe(200);
      expect(res.body.equals(fixture('index.js'))).toBe(true);
      expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
      expect(res.headers['content-length']).toBe(String(fixture('index.js').length));
      expect(res.headers['cache-control']).toBe('no-cache');
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers.etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    });

    it('is served for its path percent-encoded as one segment, as CloudCLI requests an entry', async () => {
      const plain = await asset('sub/nested.txt');
      const encoded = await asset('sub%2Fnested.txt');
      expect(encoded.status).toBe(200);
      expect(encoded.body.equals(plain.body)).toBe(true);
      expect((await asset('sub%2fnested.txt')).status).toBe(200);
    });

    it('keeps the same ETag while the file is unchanged', async () => {
      const [a, b] = await Promise.all([asset('index.js'), asset('index.js')]);
      expect(a.headers.etag).toBe(b.headers.etag);
      expect((await asset('style.css')).headers.etag).not.toBe(a.headers.etag);
    });

    it.each([
      ['style.css', 'text/css; charset=utf-8'],
      ['page.html', 'text/html; charset=utf-8'],
      ['data.json', 'application/json; charset=utf-8'],
      ['manifest.json', 'application/json; charset=utf-8'],
      ['img/logo.svg', 'image/svg+xml'],
      ['img/pixel.png', 'image/png'],
      ['font.woff2', 'font/woff2'],
      ['blob.bin', 'application/octet-stream'],
      ['sub/nested.txt', 'text/plain; charset=utf-8'],
    ])('serves %s as %s, byte for byte', async (path, type) => {
      const res = await asset(path);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toBe(type);
      expect(res.body.equals(fixture(path))).toBe(true);
    });

    it('follows a symlink that stays inside the folder', async () => {
      const res = await asset('link-in.js');
      expect(res.status).toBe(200);
      expect(res.body.equals(fixture('index.js'))).toBe(true);
    });

    it('answers HEAD with the headers and no body', async () => {
      const res = await send('/api/plugins/ui/assets/index.js', {}, 'HEAD');
      expect(res.status).toBe(200);
      expect(res.headers['content-length']).toBe(String(fixture('index.js').length));
      expect(res.headers.etag).toMatch(/^"/);
      expect(res.body.length).toBe(0);
    });
  });

  describe('conditional requests', () => {
    it('answers 304 with no body when If-None-Match matches', async () => {
      const first = await asset('style.css');
      const etag = first.headers.etag as string;
      const res = await asset('style.css', { 'If-None-Match': etag });
      expect(res.status).toBe(304);
      expect(res.body.length).toBe(0);
      expect(res.headers.etag).toBe(etag);
      expect(res.headers['cache-control']).toBe('no-cache');
    });

    it('matches an ETag in a list and a weak form of it', async () => {
      const etag = (await asset('style.css')).headers.etag as string;
      expect((await asset('style.css', { 'If-None-Match': `"other", ${etag}` })).status).toBe(304);
      expect((await asset('style.css', { 'If-None-Match': `W/${etag}` })).status).toBe(304);
    });

    it('answers 200 with the body when the ETag does not match', async () => {
      const res = await asset('style.css', { 'If-None-Match': '"not-the-etag"' });
      expect(res.status).toBe(200);
      expect(res.body.equals(fixture('style.css'))).toBe(true);
    });

    it('gives a changed file a new ETag, so the old one no longer matches', async () => {
      writeFileSync(join(pluginDir, 'changing.js'), 'one');
      const before = await asset('changing.js');
      writeFileSync(join(pluginDir, 'changing.js'), 'two!');
      const after = await asset('changing.js', { 'If-None-Match': before.headers.etag as string });
      expect(after.status).toBe(200);
      expect(after.body.toString()).toBe('two!');
      expect(after.headers.etag).not.toBe(before.headers.etag);
    });
  });

  describe('anything that would leave the plugin folder', () => {
    it.each([
      ['../../secret.txt', 'a .. traversal'],
      ['../broken/index.js', 'a .. into another plugin'],
      ['sub/../../../secret.txt', 'a .. after a real folder'],
      ['%2e%2e/%2e%2e/secret.txt', 'an encoded ..'],
      ['%2E%2E/%2E%2E/secret.txt', 'an encoded .. in upper case'],
      ['.%2e/.%2e/secret.txt', 'a half-encoded ..'],
      ['..%2f..%2fsecret.txt', 'an encoded slash'],
      ['..%2F..%2Fsecret.txt', 'an encoded slash in upper case'],
      ['..%5c..%5csecret.txt', 'an encoded backslash'],
      ['..\\..\\secret.txt', 'a raw backslash'],
      ['%2fetc%2fpasswd', 'an encoded absolute path'],
      ['sub%2F..%2F..%2Fsecret.txt', 'an encoded slash around ..'],
      ['sub%2Frelative-out.txt', 'an encoded slash to a symlink leading outside'],
      ['/etc/passwd', 'an absolute path'],
      ['index.js%00.png', 'an encoded NUL'],
      ['link-out.txt', 'a symlink to a file outside'],
      ['sub/relative-out.txt', 'a relative symlink leading outside'],
      ['dir-out/secret.txt', 'a symlink to a folder outside'],
    ])('refuses %s (%s) with 404', async (path) => {
      const res = await asset(path);
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toContain(SECRET);
      // The handler itself refused it: the route matched, this is not Express's own 404.
      expect(JSON.parse(res.body.toString())).toEqual({
        statusCode: 404,
        error: 'Not Found',
        message: 'File not found',
      });
    });

    it('refuses the absolute path of a real file outside', async () => {
      const res = await send(`/api/plugins/ui/assets/${join(root, 'secret.txt')}`);
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toContain(SECRET);
    });

    it.each([
      ['.env', 'a dotfile'],
      ['sub', 'a folder'],
      ['sub/', 'a folder with a trailing slash'],
      ['missing.js', 'a missing file'],
    ])('refuses %s (%s) with 404', async (path) => {
      const res = await asset(path);
      expect(res.status).toBe(404);
      expect(res.body.toString()).not.toContain('SECRET_IN_DOTFILE');
    });
  });

  describe('plugins it does not serve', () => {
    it.each([
      ['/api/plugins/nope/assets/index.js', 'an unknown plugin'],
      ['/api/plugins/a%20b/assets/index.js', 'an impossible plugin name'],
      ['/api/plugins/broken/assets/index.js', 'a plugin with an invalid manifest'],
    ])('answers 404 for %s (%s)', async (path) => {
      const res = await send(path);
      expect(res.status).toBe(404);
      expect(JSON.parse(res.body.toString())).toMatchObject({ statusCode: 404 });
    });
  });
});

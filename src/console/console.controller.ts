import { join } from 'node:path';

import { Controller, Get, Header, Param, UseInterceptors } from '@nestjs/common';

import { Public } from '../auth/public.decorator';
import { AssetCacheInterceptor } from '../plugins/assets/asset-cache.interceptor';
import { AssetFile } from '../plugins/assets/asset-file';
import { PluginException, PluginExceptionCode } from '../plugins/shared/plugin.exception';

/** `console/dist` of the repository or the image: src/console and dist/console are two deep. */
export const CONSOLE_DIR = join(__dirname, '..', '..', 'console', 'dist');

/** A file name of the console's build: one segment, no dotfile, no traversal. */
const CONSOLE_FILE = /^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)+$/;

/**
 * What the console's page may do: its own scripts, plugin modules imported from Blob URLs (the
 * CloudCLI way, fetched with the bearer token), inline styles (plugin frontends inject them),
 * connections to this origin only (API, `/api/events`, `/plugin-ws/*`). No framing by others.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' blob:",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

/**
 * The web console (README "The console"): `/` is its page, `/console/<file>` the files of its
 * build (console/dist, made by `npm run build`). Public: the page holds no data; everything it
 * shows comes from the API with the user's token.
 */
@Controller()
export class ConsoleController {
  @Public()
  @Get()
  @Header('Content-Security-Policy', CONTENT_SECURITY_POLICY)
  @Header('X-Content-Type-Options', 'nosniff')
  @Header('Referrer-Policy', 'no-referrer')
  @UseInterceptors(AssetCacheInterceptor)
  public index(): Promise<AssetFile> {
    return openConsoleFile('index.html');
  }

  @Public()
  @Get('console/:file')
  @Header('X-Content-Type-Options', 'nosniff')
  @UseInterceptors(AssetCacheInterceptor)
  public file(@Param('file') file: string): Promise<AssetFile> {
    if (!CONSOLE_FILE.test(file))
      throw new PluginException(PluginExceptionCode.FILE_NOT_FOUND, 'File not found');
    return openConsoleFile(file);
  }
}

async function openConsoleFile(file: string): Promise<AssetFile> {
  try {
    return await AssetFile.open(join(CONSOLE_DIR, file));
  } catch (err) {
    if (file === 'index.html' && err instanceof PluginException)
      throw new PluginException(
        PluginExceptionCode.FILE_NOT_FOUND,
        'the console is not built: run `npm run build` (npm start does it)',
      );
    throw err;
  }
}

import { Injectable } from '@nestjs/common';

/**
 * Paths whose WebSocket upgrades a Nest gateway answers (`/api/events`), so that the plugin
 * proxy, which answers every other upgrade on the server (404 for paths that are not
 * `/plugin-ws/…`), leaves them alone. Filled by the WebSocket adapter when it creates a
 * gateway's server, before the server listens.
 */
@Injectable()
export class UpgradeRoutes {
  private readonly paths = new Set<string>();

  /** `path`'s upgrades belong to someone else than the plugin proxy. */
  public claim(path: string): void {
    this.paths.add(path);
  }

  /** Whether the request URL's path was claimed (the query does not count). */
  public isClaimed(url: string | undefined): boolean {
    return this.paths.has(pathOf(url));
  }
}

/** The path of a request URL, without query or fragment. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const end = raw.search(/[?#]/);
  return end === -1 ? raw : raw.slice(0, end);
}

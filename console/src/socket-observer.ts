/** What the console learns about a socket a plugin frontend opened to `/plugin-ws/<name>`. */
export type PluginSocketEvent =
  | { readonly type: 'open'; readonly plugin: string }
  | {
      readonly type: 'close';
      readonly plugin: string;
      readonly code: number;
      readonly reason: string;
    };

/**
 * Plugin frontends open their own WebSockets; the console only watches them so that a tab can
 * say why its plugin's connection closed (4503 not running, 1012 restarting, …). The page's
 * `WebSocket` is replaced by a subclass that adds two listeners to sockets aimed at
 * `/plugin-ws/` on this host and changes nothing else: same constructor, constants, prototype
 * chain and behaviour.
 */
export function observePluginSockets(listener: (event: PluginSocketEvent) => void): void {
  const Native = window.WebSocket;
  class ObservedWebSocket extends Native {
    public constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols);
      const plugin = pluginOf(this.url);
      if (plugin === null) return;
      this.addEventListener('open', () => listener({ type: 'open', plugin }));
      this.addEventListener('close', (event) =>
        listener({ type: 'close', plugin, code: event.code, reason: event.reason }),
      );
    }
  }
  window.WebSocket = ObservedWebSocket;
}

/** The plugin a socket URL talks to, if it is this host's `/plugin-ws/<name>[/…]`. */
export function pluginOf(url: string): string | null {
  try {
    const parsed = new URL(url, location.href);
    if (parsed.host !== location.host) return null;
    const match = /^\/plugin-ws\/([^/]+)/.exec(parsed.pathname);
    return match === null ? null : decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}

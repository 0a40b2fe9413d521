import { createServer } from 'node:http';

import {
  applyHttpServerLimits,
  connectionsCheckingInterval,
} from '../../../src/http/http-server-limits';
import { readOpenFileLimit } from '../../../src/http/open-file-limit';
import { config } from '../auth/auth-context';

describe('HTTP server limits', () => {
  const warn = (): void => undefined;

  it('sets the header, request and keep-alive timeouts and a close checking interval', () => {
    const server = createServer();
    const cap = applyHttpServerLimits(
      server,
      config({
        HTTP_HEADERS_TIMEOUT_MS: 10_000,
        HTTP_REQUEST_TIMEOUT_MS: 120_000,
        HTTP_KEEP_ALIVE_TIMEOUT_MS: 7_000,
      }),
      { warn },
    );
    expect(server).toMatchObject({
      headersTimeout: 10_000,
      requestTimeout: 120_000,
      keepAliveTimeout: 7_000,
      connectionsCheckingInterval: 1000,
    });
    expect(cap).toBeDefined();
    expect(server.listenerCount('connection')).toBe(2);
  });

  it('MAX_HEADER_PHASE_CONNECTIONS_PER_IP=0 → no cap', () => {
    const server = createServer();
    expect(
      applyHttpServerLimits(server, config({ MAX_HEADER_PHASE_CONNECTIONS_PER_IP: 0 }), { warn }),
    ).toBeUndefined();
    expect(server.listenerCount('connection')).toBe(1);
  });

  it.each([
    [100, 100],
    [1000, 100],
    [2500, 250],
    [10_000, 1000],
    [600_000, 1000],
  ])('headers timeout %i ms → checked every %i ms', (timeout, interval) => {
    expect(connectionsCheckingInterval(timeout)).toBe(interval);
  });

  describe('readOpenFileLimit', () => {
    const limits = (soft: string, hard: string): string =>
      'Limit                     Soft Limit           Hard Limit           Units     \n' +
      'Max cpu time              unlimited            unlimited            seconds   \n' +
      `Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files     \n`;

    it.each([
      ['1024', '4096', { soft: 1024, hard: 4096 }],
      ['1048576', '1048576', { soft: 1048576, hard: 1048576 }],
      ['unlimited', 'unlimited', { soft: Infinity, hard: Infinity }],
    ])('soft %s, hard %s', (soft, hard, limit) => {
      expect(readOpenFileLimit(() => limits(soft, hard))).toEqual(limit);
    });

    it('no /proc → undefined', () => {
      expect(
        readOpenFileLimit(() => {
          throw new Error('ENOENT');
        }),
      ).toBeUndefined();
      expect(readOpenFileLimit(() => 'nothing here')).toBeUndefined();
    });

    it('reads this process (Node raised the soft limit to the hard one at startup)', () => {
      const limit = readOpenFileLimit();
      if (limit === undefined) return; // not Linux
      // With an unlimited hard limit Node stops at the largest value the kernel takes.
      if (limit.hard !== Infinity) expect(limit.soft).toBe(limit.hard);
    });
  });
});

import { isRpcPath, rpcUpstreamPath } from '../../../src/plugins/proxy/rpc-path';
import { upstreamWsPath } from '../../../src/plugins/proxy/ws-path';

describe('upstreamWsPath', () => {
  it.each([
    [undefined, undefined, '/ws'],
    [undefined, '?a=1&token=x', '/ws?a=1'],
    ['/a/b', undefined, '/ws/a/b'],
    ['/a/b/', '?x', '/ws/a/b/?x'],
    ['/a/./b/../c', undefined, '/ws/a/c'],
    ['/a/%2E/b/%2e%2E/c', undefined, '/ws/a/c'],
    ['/a/b/..', undefined, '/ws/a/'],
    ['/a\\..\\b', undefined, '/ws/b'],
    ['/..%2e', undefined, '/ws/..%2e'],
    ['/..', undefined, undefined],
    ['/a/../..', undefined, undefined],
    ['/%2e%2e/admin', undefined, undefined],
    ['/.%2E/admin', undefined, undefined],
    ['/a/..%2f..%2fadmin', undefined, undefined],
    ['/a/..%5c..%5cadmin', undefined, undefined],
    ['/a%00b', undefined, undefined],
  ])('sub-path %j with query %j → %j', (sub, query, expected) => {
    expect(upstreamWsPath(sub, query)).toBe(expected);
  });

  it('never returns a path outside /ws', () => {
    const pieces = ['', '.', '..', '%2e', '%2E%2e', 'a', 'b', '\\', '/'];
    for (const a of pieces)
      for (const b of pieces)
        for (const c of pieces) {
          const path = upstreamWsPath(`/${a}/${b}/${c}`, undefined);
          if (path !== undefined)
            expect(new URL(path, 'http://plugin').pathname).toMatch(/^\/ws(\/|$)/);
        }
  });
});

describe('rpcUpstreamPath', () => {
  it.each([
    ['/api/plugins/echo/rpc', '/'],
    ['/api/plugins/echo/rpc/', '/'],
    ['/api/plugins/echo/rpc/a/b?x=1&token=t', '/a/b?x=1'],
    ['/api/plugins/%65cho/rpc/a', '/a'],
    ['http://evil.example/api/plugins/echo/rpc/a?q', '/a?q'],
    ['HTTP://x:1/api/plugins/echo/rpc', '/'],
  ])('%s → %s', (target, expected) => {
    expect(rpcUpstreamPath(target, 'echo')).toBe(expected);
  });

  it.each([
    '/api/plugins/echo/RPC/a',
    '/API/plugins/echo/rpc/a',
    '/api/plugins/other/rpc/a',
    '/api/plugins/echo/rpcx',
    '/api/plugins/%E0/rpc/a',
    'http://evil.example',
  ])('%s → not an RPC route of echo', (target) => {
    expect(rpcUpstreamPath(target, 'echo')).toBeUndefined();
  });
});

describe('isRpcPath', () => {
  it.each([
    ['/api/plugins/echo/rpc', true],
    ['/api/plugins/echo/rpc/a/b', true],
    ['/api/plugins/echo/rpcx', false],
    ['/api/plugins/echo/RPC/a', false],
    ['/api/plugins/echo/secrets/KEY', false],
  ])('%s → %s', (path, expected) => {
    expect(isRpcPath(path)).toBe(expected);
  });
});

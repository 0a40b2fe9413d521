import { capacityTransition, CLEAR_BELOW, WARN_AT } from '../../../src/http/capacity-monitor';
import { effectiveBacklog } from '../../../src/http/listen';

describe('listen backlog', () => {
  it('is what was asked for, capped by net.core.somaxconn', () => {
    expect(effectiveBacklog(65535, () => '4096\n')).toEqual({
      requested: 65535,
      somaxconn: 4096,
      effective: 4096,
    });
    expect(effectiveBacklog(1024, () => '4096')).toEqual({
      requested: 1024,
      somaxconn: 4096,
      effective: 1024,
    });
  });

  it('is taken as asked where the cap cannot be read', () => {
    const unreadable = (): string => {
      throw new Error('ENOENT');
    };
    expect(effectiveBacklog(2048, unreadable)).toEqual({ requested: 2048, effective: 2048 });
    expect(effectiveBacklog(2048, () => 'garbage')).toEqual({ requested: 2048, effective: 2048 });
  });
});

describe('descriptor pressure', () => {
  it('warns once on crossing 80 %, says so once back under 70 %, and is quiet between', () => {
    expect(capacityTransition(false, WARN_AT - 0.01)).toBe('none');
    expect(capacityTransition(false, WARN_AT)).toBe('warn');
    expect(capacityTransition(true, 0.95)).toBe('none');
    expect(capacityTransition(true, CLEAR_BELOW + 0.05)).toBe('none');
    expect(capacityTransition(true, CLEAR_BELOW - 0.01)).toBe('clear');
    expect(capacityTransition(false, 0.1)).toBe('none');
  });
});

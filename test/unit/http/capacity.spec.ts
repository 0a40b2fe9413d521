import {
  capacityTransition,
  CLEAR_BELOW,
  ephemeralPortCount,
  LimitWatch,
  Usage,
  WARN_AT,
} from '../../../src/http/capacity-monitor';
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

describe('a watched limit', () => {
  /** A limit whose readings the test sets, with the ratios and lines it produced. */
  function watched(name: string) {
    let usage: Usage | undefined = { used: 0, limit: 100 };
    const ratios: number[] = [];
    const lines: { level: 'warn' | 'log'; line: Record<string, unknown> }[] = [];
    const watch = new LimitWatch(
      {
        name,
        hint: 'add replicas',
        read: () => usage,
        setRatio: (ratio) => ratios.push(ratio),
      },
      {
        warn: (line: Record<string, unknown>) => lines.push({ level: 'warn', line }),
        log: (line: Record<string, unknown>) => lines.push({ level: 'log', line }),
      },
    );
    return {
      watch,
      ratios,
      lines,
      set: (next: Usage | undefined) => {
        usage = next;
      },
    };
  }

  it('sets its ratio every time and logs one warning and one all-clear per episode', async () => {
    const w = watched('upstream_port');
    for (const used of [10, 79, 80, 95, 75, 69, 85]) {
      w.set({ used, limit: 100, detail: { plugin: 'echo' } });
      await w.watch.check();
    }
    expect(w.ratios).toEqual([0.1, 0.79, 0.8, 0.95, 0.75, 0.69, 0.85]);
    expect(w.lines).toEqual([
      {
        level: 'warn',
        line: {
          event: 'near_upstream_port_limit',
          plugin: 'echo',
          used: 80,
          limit: 100,
          hint: 'add replicas',
        },
      },
      {
        level: 'log',
        line: { event: 'upstream_port_usage_normal', plugin: 'echo', used: 69, limit: 100 },
      },
      {
        level: 'warn',
        line: {
          event: 'near_upstream_port_limit',
          plugin: 'echo',
          used: 85,
          limit: 100,
          hint: 'add replicas',
        },
      },
    ]);
  });

  it('reports nothing for a reading it cannot take or a limit of zero', async () => {
    const w = watched('fd');
    w.set(undefined);
    await w.watch.check();
    w.set({ used: 5, limit: 0 });
    await w.watch.check();
    expect(w.ratios).toEqual([]);
    expect(w.lines).toEqual([]);
  });
});

describe('ephemeral port range', () => {
  it('counts the ports of net.ipv4.ip_local_port_range', () => {
    expect(ephemeralPortCount(() => '32768\t60999\n')).toBe(28232);
    expect(ephemeralPortCount(() => '1024 65535')).toBe(64512);
  });

  it('is undefined where the range cannot be read or makes no sense', () => {
    expect(ephemeralPortCount(() => 'garbage')).toBeUndefined();
    expect(ephemeralPortCount(() => '60999 32768')).toBeUndefined();
    expect(
      ephemeralPortCount(() => {
        throw new Error('ENOENT');
      }),
    ).toBeUndefined();
  });
});

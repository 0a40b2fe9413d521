import { LogLine, LogRingBuffer } from '../../../src/plugins/process/log-ring-buffer';

const line = (text: string, time = 0): LogLine => ({ time, stream: 'stdout', line: text });
const texts = (lines: LogLine[]): string[] => lines.map((l) => l.line);

describe('LogRingBuffer', () => {
  it('keeps lines in order until it is full', () => {
    const buffer = new LogRingBuffer(3);
    buffer.push(line('a'));
    buffer.push(line('b'));
    expect(texts(buffer.tail(10))).toEqual(['a', 'b']);
    expect(buffer.size).toBe(2);
  });

  it('drops the oldest line for each new one once full, across many wrap-arounds', () => {
    const buffer = new LogRingBuffer(3);
    for (let i = 0; i < 10; i++) buffer.push(line(String(i)));
    expect(texts(buffer.tail(3))).toEqual(['7', '8', '9']);
    expect(buffer.size).toBe(3);
    buffer.push(line('10'));
    expect(texts(buffer.tail(3))).toEqual(['8', '9', '10']);
  });

  it('tail(n) gives the newest n lines, oldest first, whatever the head position', () => {
    const buffer = new LogRingBuffer(4);
    for (let i = 0; i < 6; i++) buffer.push(line(String(i))); // head has wrapped
    expect(texts(buffer.tail(1))).toEqual(['5']);
    expect(texts(buffer.tail(2))).toEqual(['4', '5']);
    expect(texts(buffer.tail(4))).toEqual(['2', '3', '4', '5']);
    expect(texts(buffer.tail(100))).toEqual(['2', '3', '4', '5']);
  });

  it('tail of zero, a negative number or an empty buffer is empty', () => {
    const buffer = new LogRingBuffer(2);
    expect(buffer.tail(5)).toEqual([]);
    buffer.push(line('a'));
    expect(buffer.tail(0)).toEqual([]);
    expect(buffer.tail(-3)).toEqual([]);
  });

  it('keeps the whole entry (time and stream) of each line', () => {
    const buffer = new LogRingBuffer(2);
    buffer.push({ time: 1, stream: 'stdout', line: 'out' });
    buffer.push({ time: 2, stream: 'stderr', line: 'err' });
    buffer.push({ time: 3, stream: 'portico', line: 'note' });
    expect(buffer.tail(2)).toEqual([
      { time: 2, stream: 'stderr', line: 'err' },
      { time: 3, stream: 'portico', line: 'note' },
    ]);
  });

  it('also drops the oldest lines while the characters exceed the bound', () => {
    const buffer = new LogRingBuffer(100, 10);
    buffer.push(line('aaaa'));
    buffer.push(line('bbbb'));
    buffer.push(line('cc'));
    expect(texts(buffer.tail(10))).toEqual(['aaaa', 'bbbb', 'cc']); // exactly 10
    buffer.push(line('ddddd'));
    expect(texts(buffer.tail(10))).toEqual(['cc', 'ddddd']);
    expect(buffer.size).toBe(2);
  });

  it('counts characters right after wrapping, so the character bound still holds', () => {
    const buffer = new LogRingBuffer(2, 6);
    for (const text of ['aaa', 'bbb', 'ccc', 'ddd']) buffer.push(line(text));
    expect(texts(buffer.tail(5))).toEqual(['ccc', 'ddd']);
    buffer.push(line('eeeee')); // 3 + 5 > 6: only the newest fits
    expect(texts(buffer.tail(5))).toEqual(['eeeee']);
  });

  it('refuses a capacity below one line', () => {
    expect(() => new LogRingBuffer(0)).toThrow(RangeError);
  });
});

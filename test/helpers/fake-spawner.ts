import type {
  ChildHandle,
  OutputStream,
  ProcessSpawner,
  SpawnSpec,
  StopSignal,
} from '../../src/plugins/process/process-spawner';

/** A scripted child process: the test decides what it prints and when it exits. */
export class FakeChild implements ChildHandle {
  public readonly signals: StopSignal[] = [];
  public exited = false;
  private lineListeners: ((stream: OutputStream, line: string) => void)[] = [];
  private exitListeners: ((code: number | null, signal: NodeJS.Signals | null) => void)[] = [];
  private closeListeners: (() => void)[] = [];

  public constructor(
    public readonly pid: number,
    public readonly spec: SpawnSpec,
  ) {}

  public onLine(listener: (stream: OutputStream, line: string) => void): void {
    this.lineListeners.push(listener);
  }

  public onExit(listener: (code: number | null, signal: NodeJS.Signals | null) => void): void {
    this.exitListeners.push(listener);
  }

  public onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  public signal(signal: StopSignal): void {
    this.signals.push(signal);
  }

  public print(line: string, stream: OutputStream = 'stdout'): void {
    for (const l of this.lineListeners) l(stream, line);
  }

  public ready(port = 4000): void {
    this.print(JSON.stringify({ ready: true, port }));
  }

  public exit(code: number | null, signal: NodeJS.Signals | null = null): void {
    if (this.exited) return;
    this.exited = true;
    for (const l of this.exitListeners) l(code, signal);
  }

  /** Its output ends (after exit, or before it is reported): no line follows. */
  public close(): void {
    for (const l of this.closeListeners) l();
  }
}

export class FakeSpawner implements ProcessSpawner {
  public readonly children: FakeChild[] = [];

  public spawn(spec: SpawnSpec): FakeChild {
    const child = new FakeChild(1000 + this.children.length, spec);
    this.children.push(child);
    return child;
  }

  public get last(): FakeChild {
    const child = this.children[this.children.length - 1];
    if (child === undefined) throw new Error('nothing spawned yet');
    return child;
  }
}

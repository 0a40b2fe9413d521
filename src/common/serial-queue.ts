/**
 * Runs async tasks one at a time, in the order they were queued: each starts after the one
 * before it settled, whether that one resolved or threw. A failed task rejects its own caller
 * only; the queue goes on.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  public run<T>(task: () => Promise<T>): Promise<T> {
    const result = this.tail.then(task, task);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

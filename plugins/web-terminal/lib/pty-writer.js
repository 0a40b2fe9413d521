'use strict';
// Writes client input to the pty's file descriptor, in order, and counts what is still queued.
//
// node-pty's own `write` queues without telling how much is pending, so a client pasting faster
// than the shell reads would grow this process's memory without bound. Counting lets the session
// stop reading the WebSocket above a high-water mark (docs: README.md, "Flow control").
const { write } = require('node:fs');

/** Retries after EAGAIN (the pty's input buffer is full) back off to this delay, in ms. */
const MAX_RETRY_DELAY_MS = 50;

class PtyWriter {
  /**
   * @param {number} fd the pty master's file descriptor (non-blocking)
   * @param {{ onDrain: () => void, onError: (err: Error) => void }} events
   *   onDrain: the queue fell to or below `lowWaterMark` after being above `highWaterMark`
   * @param {{ highWaterMark: number, lowWaterMark: number }} marks
   */
  constructor(fd, events, marks) {
    this.fd = fd;
    this.events = events;
    this.marks = marks;
    /** @type {{ buffer: Buffer, offset: number }[]} */
    this.queue = [];
    this.pendingBytes = 0;
    this.writing = false;
    this.retryStreak = 0;
    this.retryTimer = undefined;
    this.disposed = false;
    this.aboveHighWater = false;
  }

  /** Queues `buffer`; returns false when the queue is above the high-water mark. */
  write(buffer) {
    if (this.disposed || buffer.length === 0) return !this.aboveHighWater;
    this.queue.push({ buffer, offset: 0 });
    this.pendingBytes += buffer.length;
    if (this.pendingBytes > this.marks.highWaterMark) this.aboveHighWater = true;
    if (!this.writing) this.flush();
    return !this.aboveHighWater;
  }

  /** Stops writing (the pty is closing): its descriptor must not be touched afterwards. */
  dispose() {
    this.disposed = true;
    clearTimeout(this.retryTimer);
    this.queue = [];
    this.pendingBytes = 0;
  }

  flush() {
    this.retryTimer = undefined;
    const task = this.queue[0];
    if (this.disposed || task === undefined) {
      this.writing = false;
      return;
    }
    this.writing = true;
    write(this.fd, task.buffer, task.offset, task.buffer.length - task.offset, null, (err, n) =>
      this.written(task, err, n),
    );
  }

  written(task, err, count) {
    if (this.disposed) return;
    if (err) {
      if (err.code === 'EAGAIN') {
        // Immediately at first (a shell reading a paste empties the buffer fast), then backing
        // off, so that a program that never reads its input does not keep a core busy.
        this.retryStreak += 1;
        const delay = this.retryStreak < 4 ? 0 : Math.min(MAX_RETRY_DELAY_MS, this.retryStreak);
        this.retryTimer = setTimeout(() => this.flush(), delay);
        return;
      }
      this.writing = false;
      this.dispose();
      this.events.onError(err);
      return;
    }
    this.retryStreak = 0;
    task.offset += count;
    this.pendingBytes -= count;
    if (task.offset >= task.buffer.length) this.queue.shift();
    if (this.aboveHighWater && this.pendingBytes <= this.marks.lowWaterMark) {
      this.aboveHighWater = false;
      this.events.onDrain();
    }
    this.flush();
  }
}

module.exports = { PtyWriter };

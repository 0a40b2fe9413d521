import type { LogLevel } from '../config/portico-config';

/**
 * Whether LOG_LEVEL lets debug lines through. Hot paths (every handshake, every plugin output
 * line) check this once instead of building log objects that pino would drop.
 */
export function debugEnabled(level: LogLevel): boolean {
  return level === 'debug' || level === 'trace';
}

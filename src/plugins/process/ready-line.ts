/** Parses the contract's ready line `{"ready":true,"port":N}`; anything else is ordinary output. */
export function parseReadyLine(line: string): number | undefined {
  const trimmed = line.trim();
  if (!trimmed.startsWith('{') || !trimmed.includes('ready')) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { ready, port } = value as { ready?: unknown; port?: unknown };
  if (ready !== true || typeof port !== 'number') return undefined;
  return Number.isInteger(port) && port > 0 && port < 65536 ? port : undefined;
}

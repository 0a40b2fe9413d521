/**
 * The load client: a separate process (pinned to CPU 0 by the harness) that runs one scenario
 * at a time on request over the IPC channel and answers with its metrics or its failure.
 */
import { runScenario } from './scenarios';
import type { ClientReply, ClientRequest } from './types';

function reply(message: ClientReply): void {
  process.send?.(message);
}

if (!process.send) {
  process.stderr.write('bench/client.ts is started by bench/bench.ts (needs an IPC channel)\n');
  process.exit(2);
}

process.on('message', (message: ClientRequest) => {
  if (message.type === 'exit') {
    process.disconnect();
    setImmediate(() => process.exit(0));
    return;
  }
  runScenario(message.scenario, message.target, message.params).then(
    ({ metrics, notes }) => {
      (global as { gc?: () => void }).gc?.();
      reply({ type: 'result', id: message.id, metrics, notes });
    },
    (err: Error) => reply({ type: 'error', id: message.id, message: err.message }),
  );
});

process.on('disconnect', () => process.exit(0));
reply({ type: 'ready' });

import { randomBytes } from 'node:crypto';

import type { HostProcess } from '../../../src/plugins/process/host-process';

/** A host on "this machine" (boot-a, the root pid namespace) with a fresh instance id. */
export function hostProcess(overrides: Partial<HostProcess> = {}): HostProcess {
  return {
    hostname: 'node-a',
    bootId: 'boot-a',
    pidNamespace: 'pid:[4026531836]',
    pid: 50,
    startTime: '5050',
    instance: randomBytes(16).toString('hex'),
    ...overrides,
  };
}

import { stopLeftovers } from './leftovers';

/**
 * Loaded before every suite (jest.config.js `setupFilesAfterEnv`): after the suite, whatever a
 * test started through the helpers and did not stop is stopped (see leftovers.ts).
 */
afterAll(() => stopLeftovers());

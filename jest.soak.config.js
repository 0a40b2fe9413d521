/**
 * `npm run test:soak`: the long-running reliability checks in test/soak (never part of
 * `npm test`). Sizes come from SOAK_* variables; see docs/reliability.md.
 * @type {import('jest').Config}
 */
module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/test/soak'],
  testRegex: '\\.soak\\.ts$',
  transform: { '^.+\\.ts$': 'ts-jest' },
  moduleFileExtensions: ['ts', 'js', 'json'],
  // The full sizes run for minutes; each soak bounds its own waits.
  testTimeout: 60 * 60 * 1000,
  maxWorkers: 1,
};

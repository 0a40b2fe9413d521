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
  setupFilesAfterEnv: [
    '<rootDir>/test/helpers/has-assertions.ts',
    '<rootDir>/test/helpers/suite-teardown.ts',
  ],
  // The full sizes run for minutes; each soak bounds its own waits.
  testTimeout: 60 * 60 * 1000,
  maxWorkers: 1,
};

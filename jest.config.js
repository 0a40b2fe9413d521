/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/test'],
  testRegex: '\\.(spec|e2e-spec)\\.ts$',
  transform: { '^.+\\.ts$': 'ts-jest' },
  moduleFileExtensions: ['ts', 'js', 'json'],
  // A test that asserts nothing fails; what a suite leaves running is stopped after it.
  setupFilesAfterEnv: [
    '<rootDir>/test/helpers/has-assertions.ts',
    '<rootDir>/test/helpers/suite-teardown.ts',
  ],
  testTimeout: 30000,
  maxWorkers: 2,
};

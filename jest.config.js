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
  // A worker is recycled between suites once its heap passes this. Tearing down a V8 heap at
  // exit takes about 1 ms per MiB on a busy 2-core machine; a worker grown to 500 MiB over the
  // e2e suites overran Jest's 500 ms exit grace and was reported as "failed to exit gracefully"
  // although it held no handle.
  workerIdleMemoryLimit: '150MB',
};

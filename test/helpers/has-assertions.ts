/**
 * Loaded before every suite (jest.config.js `setupFilesAfterEnv`): a test that makes no
 * assertion fails instead of passing silently. Waiting for something (`waitFor`) is not an
 * assertion; a test states what it expects once the wait is over.
 */
beforeEach(() => {
  expect.hasAssertions();
});

import eslint from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'dist/',
      'node_modules/',
      // Plugins are plain JavaScript run by Node, except the web terminal's TypeScript frontend.
      'plugins/*/**/*.js',
      'plugins/*/dist/',
      'console/dist/',
      'console/*.js',
      'console/dev/',
      'test/fixtures/',
      'data/',
      'coverage/',
    ],
  },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.ts'],
    // Typed rules: the promise checks below need the type checker (tsconfig.json's project).
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits or catches becomes an unhandled rejection, which ends Node 20.
      // Deliberate fire-and-forget is written `void p` with a comment saying why it is safe.
      '@typescript-eslint/no-floating-promises': 'error',
      // An async function where a void callback is expected (an event listener, a timer) has
      // its rejection dropped on the floor.
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/explicit-member-accessibility': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
    },
  },
);

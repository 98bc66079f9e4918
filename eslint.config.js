import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

// Workflow code is replayed deterministically inside Temporal's sandbox: no Node built-ins, and no
// reaching into the I/O layers. Type-only imports of activity interfaces are how workflows name them.
const workflowBoundary = {
  paths: builtinModules.map((name) => ({ name, message: 'Workflow code must not use Node built-ins; call an activity.' })),
  patterns: [
    { group: ['node:*'], message: 'Workflow code must not use Node built-ins; call an activity.' },
    { group: ['**/activities/*', '**/activities'], allowTypeImports: true, message: 'Workflows may only `import type` from activities/.' },
    { group: ['**/scripts/*', '**/scripts', '**/db/*', '**/db', '**/api/*', '**/api', '**/web/*', '**/web', '**/worker/*', '**/worker'], message: 'Workflows must not import I/O layers (db, api, web, worker) or scripts.' },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/', 'build/', '.cache/', '.data/', '.react-router/', 'test/histories/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    // Entry points, tests and benchmarks talk to a person on a terminal; everything else logs through lib/log.ts.
    files: ['scripts/**', 'test/**', 'bench/**'],
    rules: { 'no-console': 'off' },
  },
  {
    // Layers: scripts/ holds entry points (run, test, bootstrap helpers); the product never imports them.
    files: ['api/**', 'activities/**', 'db/**', 'lib/**', 'sim/**', 'web/**', 'worker/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/scripts/*', '**/scripts'], message: 'Product code must not import scripts/ (entry points); shared helpers live in lib/.' }] }],
    },
  },
  {
    // Type-aware rules: a promise nobody awaits or handles loses its error (and, in a request handler, the answer).
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
  {
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': 'off',
      '@typescript-eslint/no-restricted-imports': ['error', workflowBoundary],
      'no-restricted-globals': ['error', { name: 'process', message: 'Workflow code has no process; pass config as workflow input.' }, { name: 'setTimeout', message: 'Use sleep() or condition() from @temporalio/workflow.' }],
    },
  },
);

import { builtinModules } from 'node:module';
import tseslint from 'typescript-eslint';

// Workflow code is replayed deterministically inside Temporal's sandbox: no Node built-ins, and no
// reaching into the I/O layers. Type-only imports of activity interfaces are how workflows name them.
const workflowBoundary = {
  paths: builtinModules.map((name) => ({ name, message: 'Workflow code must not use Node built-ins; call an activity.' })),
  patterns: [
    { group: ['node:*'], message: 'Workflow code must not use Node built-ins; call an activity.' },
    { group: ['**/activities/*', '**/activities'], allowTypeImports: true, message: 'Workflows may only `import type` from activities/.' },
    { group: ['**/db/*', '**/db', '**/api/*', '**/api', '**/web/*', '**/web', '**/worker/*', '**/worker'], message: 'Workflows must not import I/O layers (db, api, web, worker).' },
  ],
};

export default tseslint.config(
  { ignores: ['node_modules/', 'build/', '.cache/', '.data/', '.react-router/', 'test/histories/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
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

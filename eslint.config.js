import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'test-output/**', '.state/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-imports': 'off',
    },
  },
  {
    // The core decides; it never touches the world.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'process', message: 'src/core is pure: no env, no clock.' }, { name: 'Date', message: 'src/core is pure: pass time in.' }, { name: 'setTimeout', message: 'src/core is pure.' }],
    },
  },
  {
    // The core knows nothing of the engine, the adapters or the server.
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:fs', 'node:fs/*', 'fs', 'fs/*', 'node:child_process', 'node:net', 'node:http', 'node:https', 'axios', 'simple-git', 'dockerode', 'mqtt', 'ioredis', 'pg'], message: 'src/core is pure: do I/O in an adapter and pass data in.' },
          { group: ['**/engine/*', '**/adapters/*', '**/adapters/**', '**/server/*', '**/commands/*'], message: 'src/core is pure: it depends on nothing but itself.' },
        ],
      }],
    },
  },
  {
    // The engine acts through its ports only: it never builds or imports an adapter.
    files: ['src/engine/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/adapters/*', '**/adapters/**', '**/server/*', '**/server/**', '**/commands/*', '**/runtime.js'], message: 'the engine acts through src/engine/ports.ts; wire adapters in src/runtime.ts or a command.' }],
      }],
    },
  },
  {
    // Adapters implement the engine's ports and import nothing else of it.
    files: ['src/adapters/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/engine/*', '!**/engine/ports.js'], message: 'adapters import only src/engine/ports.ts from the engine.' }],
      }],
    },
  },
);

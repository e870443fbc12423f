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
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['node:fs', 'node:fs/*', 'fs', 'fs/*', 'node:child_process', 'node:net', 'node:http', 'node:https', 'axios', 'simple-git', 'dockerode', 'mqtt', 'ioredis', 'pg'], message: 'src/core is pure: do I/O in an adapter and pass data in.' },
        ],
      }],
      'no-restricted-globals': ['error', { name: 'process', message: 'src/core is pure: no env, no clock.' }, { name: 'Date', message: 'src/core is pure: pass time in.' }, { name: 'setTimeout', message: 'src/core is pure.' }],
    },
  },
);

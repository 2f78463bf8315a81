// ESLint with typescript-eslint's type-aware rules (floating and misused promises,
// unused code, unsafe any), run by `npm run lint` and CI over every TypeScript file.
import js from '@eslint/js';
import stylistic from '@stylistic/eslint-plugin';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '**/*.mjs', '**/*.js', '!inference-server/page/*.js'] },
  js.configs.recommended,
  // The browser page's script: plain JavaScript, no types to check.
  { files: ['inference-server/page/*.js'], languageOptions: { globals: globals.browser, sourceType: 'module' } },
  ...tseslint.configs.recommendedTypeChecked.map((c) => ({ ...c, files: ['**/*.ts'] })),
  {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // A timer read by a closure declared before its one assignment cannot be const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },
  // No line over prettier's printWidth (120 characters): prettier wraps code but never a comment, a string or a
  // regex, so those would otherwise creep past it. A line holding a URL may be longer: a URL cannot be wrapped.
  // (@stylistic/max-len is core max-len, deprecated since ESLint 8.53, as ESLint Stylistic maintains it.)
  {
    plugins: { '@stylistic': stylistic },
    rules: { '@stylistic/max-len': ['error', { code: 120, ignoreUrls: true }] },
  },
);

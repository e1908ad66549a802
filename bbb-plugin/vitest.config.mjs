// Unit tests of the plugin's pure logic (test/*.test.ts), in Node: no browser, no BigBlueButton.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
  },
});

// The web console: built into dist/console and served by `baton serve` at /console/.
// Everything is bundled (no CDN, no web fonts): the console works offline.
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  base: '/console/',
  plugins: [react()],
  build: { outDir: fileURLToPath(new URL('../dist/console', import.meta.url)), emptyOutDir: true, chunkSizeWarningLimit: 1500 },
  // `npx vite --config console/vite.config.ts` during development: the API on :8080 behind it.
  server: { proxy: { '^/(runs|workflows|approvals|console-api|health)': 'http://127.0.0.1:8080' } },
});

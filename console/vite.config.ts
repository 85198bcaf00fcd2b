// Vite builds the console into dist/ (index.html + content-hashed files under assets/),
// which the weir binary embeds at build time. JSX is compiled for Preact by Vite's own
// transformer, so no framework plugin is needed.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    assetsDir: 'assets',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npm run dev` proxies the API to a local `weir serve` (default port).
    proxy: { '/v1': process.env.WEIR_URL ?? 'http://127.0.0.1:7878' },
  },
  test: {
    include: ['src/**/*.test.ts'],
  },
});

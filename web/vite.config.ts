import { defineConfig } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { fileURLToPath } from "node:url";

const outDir = fileURLToPath(new URL("../src/inficond/server/static", import.meta.url));

export default defineConfig({
  plugins: [svelte()],
  base: "./",
  build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 800 },
  server: { proxy: { "/api": "http://127.0.0.1:8765" } },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});

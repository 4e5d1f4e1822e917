import { defineConfig, type Plugin } from "vite";
import { svelte } from "@sveltejs/vite-plugin-svelte";
import { fileURLToPath } from "node:url";

const outDir = fileURLToPath(new URL("../src/inficond/server/static", import.meta.url));

// main.ts loads the views (App) with a dynamic import, so that it can ask for the first class's
// data before the views' script has run; this asks for that script and its CSS together with the
// entry, instead of after it (a waterfall of one round trip on the first render).
function preloadViews(): Plugin {
  return {
    name: "inficond-preload-views",
    apply: "build",
    transformIndexHtml: {
      order: "post",
      handler(_html, ctx) {
        const tags = [];
        for (const chunk of Object.values(ctx.bundle ?? {})) {
          if (chunk.type !== "chunk" || !chunk.isDynamicEntry) continue;
          if (!chunk.facadeModuleId?.endsWith("App.svelte")) continue;
          const entry = (f: string) => { const c = ctx.bundle?.[f]; return c?.type === "chunk" && c.isEntry; };
          for (const file of [chunk.fileName, ...chunk.imports.filter((f) => !entry(f))]) {
            tags.push({ tag: "link", attrs: { rel: "modulepreload", crossorigin: true, href: `./${file}` }, injectTo: "head" as const });
          }
          for (const css of chunk.viteMetadata?.importedCss ?? []) {
            tags.push({ tag: "link", attrs: { rel: "stylesheet", crossorigin: true, href: `./${css}` }, injectTo: "head" as const });
          }
        }
        return tags;
      },
    },
  };
}

export default defineConfig({
  plugins: [svelte(), preloadViews()],
  base: "./",
  build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 800 },
  server: { proxy: { "/api": "http://127.0.0.1:8765" } },
  test: { include: ["src/**/*.test.ts"], environment: "node" },
});

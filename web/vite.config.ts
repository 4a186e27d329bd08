import { defineConfig } from "vite";

// The page is served by dvr-server under /ui; the build lands in the Python package
// (src/dvr/web/static) so the server never needs Node at run time.
// `npm run dev` serves the page with hot reload and forwards API calls to a running server
// (DVR_SERVER, default http://127.0.0.1:9696).
const server = process.env.DVR_SERVER ?? "http://127.0.0.1:9696";

export default defineConfig({
  base: "/ui/",
  build: {
    outDir: "../src/dvr/web/static",
    emptyOutDir: true,
    assetsDir: "assets",
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      "/dvr": { target: server, changeOrigin: true },
      "/v2.0": { target: server, changeOrigin: true },
    },
  },
});

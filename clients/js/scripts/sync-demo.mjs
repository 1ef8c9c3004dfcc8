#!/usr/bin/env node
// Copies the built client (dist/natter-client.js) to infra/web/natter-client.js, the copy that
// natter-local embeds for its demo page. Run it after changing the client and commit the copy;
// test/demo-bundle.test.mjs fails while the copy differs from the build.
import { copyFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const builtPath = join(here, "..", "dist", "natter-client.js");
export const demoPath = join(here, "..", "..", "..", "infra", "web", "natter-client.js");

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  copyFileSync(builtPath, demoPath);
  console.log(`copied ${builtPath} to ${demoPath}`);
}

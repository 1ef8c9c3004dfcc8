// natter-local embeds a copy of the built client for its demo page (infra/web/natter-client.js):
// it must be this build, byte for byte, so that the page runs the client these tests test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { builtPath, demoPath } from "../scripts/sync-demo.mjs";

test("the demo page's copy of the client is the current build", () => {
  const built = readFileSync(builtPath, "utf8");
  const embedded = readFileSync(demoPath, "utf8");
  assert.ok(
    built === embedded,
    "infra/web/natter-client.js is stale: run `npm run build && npm run sync-demo` in clients/js, rebuild natter-local, and commit the copy",
  );
  // The page imports the client by this name, and only what the client exports.
  assert.match(embedded, /export class Session\b/);
  assert.match(embedded, /export class NatterError\b/);
  assert.doesNotMatch(embedded, /^import /m, "the bundle is one file with no imports");
});

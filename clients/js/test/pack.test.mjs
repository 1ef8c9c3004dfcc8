// `npm pack` makes a package that installs and imports with no dependencies, whose types compile
// in an app, and whose dist/natter-client.js is one ES module a browser can load as it is.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");

test("npm pack gives an installable, dependency-free package with types", () => {
  const dir = mkdtempSync(join(tmpdir(), "natter-client-pack-"));
  try {
    const out = execFileSync("npm", ["pack", "--pack-destination", dir, "--json"], { cwd: pkg, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    const [info] = JSON.parse(out.slice(out.indexOf("[")));
    const files = info.files.map((f) => f.path).sort();
    assert.ok(files.includes("dist/natter-client.js"), files.join(", "));
    assert.ok(files.includes("dist/natter-client.d.ts"));
    assert.ok(files.includes("dist/protocol.d.ts"));
    assert.ok(!files.some((f) => f.startsWith("src/") || f.startsWith("test/") || f.includes("node_modules")), files.join(", "));
    const manifest = JSON.parse(readFileSync(join(pkg, "package.json"), "utf8"));
    assert.equal(manifest.dependencies, undefined, "no runtime dependencies");

    const app = join(dir, "app");
    execFileSync("mkdir", ["-p", app]);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
    execFileSync("npm", ["install", "--offline", "--no-audit", "--no-fund", join(dir, info.filename)], { cwd: app, stdio: "ignore" });
    const installed = join(app, "node_modules", "natter-client");
    assert.ok(existsSync(join(installed, "dist", "natter-client.d.ts")));
    assert.ok(!existsSync(join(app, "node_modules", "ws")), "nothing else was installed");
    const printed = execFileSync(
      "node",
      ["--input-type=module", "-e", "import * as n from 'natter-client'; console.log(Object.keys(n).sort().join(','))"],
      { cwd: app, encoding: "utf8" },
    ).trim();
    for (const name of ["ConversationRef", "MessageRef", "MessageSubscription", "NatterError", "ReactionRef", "Session", "UserRef"]) {
      assert.ok(printed.split(",").includes(name), `${name} in ${printed}`);
    }

    // The declarations type-check an app written against the seeds' API.
    writeFileSync(
      join(app, "app.ts"),
      `import { Session, NatterError, type MessageSnapshot, type MessageSubscriptionState } from "natter-client";
const session = new Session({ url: "http://127.0.0.1:8787", token: "t" });
const inBrowser = new Session({ url: "https://api.example.com", wsUrl: "wss://ws.example.com/prod", tokenFetcher: async () => "t", WebSocket });
void inBrowser;
const conv = session.conversation("lunch");
async function main(): Promise<void> {
  const ref = await conv.send({ text: "*hi*", custom: { a: "b" } });
  await ref.reaction("👍").add();
  const m: MessageSnapshot | null = await ref.get();
  const sub = conv.subscribeMessages((messages: MessageSnapshot[], loadedAll: boolean) => void [messages, loadedAll]);
  const state: MessageSubscriptionState = sub.state;
  if (state.type === "active") void state.latestSnapshot[0]?.plaintext;
  await sub.loadMore(50);
  const ids: string[] = await session.message({ any: "json" }, ["bob"]);
  session.on("message", (message: unknown, senderId: string, messageId: string) => void [message, senderId, messageId]);
  void [m, ids, session.messages.length, session.userId, new NatterError("x", 400, "y").code];
  session.close();
}
void main;
`,
    );
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, module: "NodeNext", moduleResolution: "NodeNext", target: "ES2022", lib: ["ES2022", "DOM"], types: [] }, files: ["app.ts"] }),
    );
    execFileSync(join(pkg, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.json"], { cwd: app, encoding: "utf8" });

    // One ES module with no imports, so a browser loads dist/natter-client.js by itself.
    const bundle = readFileSync(join(installed, "dist", "natter-client.js"), "utf8");
    assert.doesNotMatch(bundle, /^\s*import\s/m);
    assert.doesNotMatch(bundle, /require\(/);
    assert.match(bundle, /export class Session/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// Starts natter-local for a test on a free loopback port and stops it afterwards.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

export async function startGateway({ devSecrets = false, args = [], env = {} } = {}) {
  const bin = process.env.NATTER_LOCAL_BIN ?? join(repoRoot, "target", "debug", "natter-local");
  if (!existsSync(bin)) throw new Error(`natter-local is not built at ${bin}: run cargo build -p natter-local`);
  const childEnv = { ...process.env, ...env };
  if (devSecrets) {
    delete childEnv.NATTER_SIGNING_SECRET;
    delete childEnv.NATTER_SECRET_KEY;
  }
  const child = spawn(bin, ["--listen", "127.0.0.1:0", ...args], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const baseUrl = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`natter-local did not start:\n${output}`)), 60_000);
    const read = (chunk) => {
      output += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(output);
      if (match) { clearTimeout(timer); resolveUrl(match[1]); }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", (chunk) => { output += chunk; });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`natter-local exited with ${code}:\n${output}`)); });
  });
  return {
    baseUrl,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

// The test harness: starts the built natter-local on a free loopback port (in memory, or on a
// fresh DynamoDB table at NATTER_TEST_DYNAMODB_ENDPOINT), mints user tokens with its signing
// secret, and talks to its HTTP API with the secret key.
import { spawn } from "node:child_process";
import { createHmac, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const here = dirname(fileURLToPath(import.meta.url));
export const repo = resolve(here, "..", "..", "..");

export const SIGNING_SECRET = "natter-js-signing-secret-0123456789abcdef";
export const SECRET_KEY = "natter-js-secret-key-0123456789abcdef";
/** Every test gateway cuts every WebSocket connection this many seconds after it connected. */
export const WS_MAX_LIFETIME = 3;

/** The natter-local binary: NATTER_LOCAL_BIN, or cargo's debug build. */
export function binaryPath() {
  const fromEnv = process.env.NATTER_LOCAL_BIN;
  const target = process.env.CARGO_TARGET_DIR || join(repo, "target");
  const path = fromEnv || join(target, "debug", "natter-local");
  if (!existsSync(path)) {
    throw new Error(
      `${path} is missing: build it with \`cargo build -p natter-local\` (scripts/test does), or point NATTER_LOCAL_BIN at it`,
    );
  }
  return path;
}

/**
 * The stores to test: both, unless NATTER_JS_STORES names some ("memory", "dynamodb"). The
 * DynamoDB runs need NATTER_TEST_DYNAMODB_ENDPOINT (scripts/moto sets it) and fail without it;
 * under CI both must run.
 */
export function stores() {
  const chosen = (process.env.NATTER_JS_STORES || "memory,dynamodb").split(",").map((s) => s.trim());
  for (const s of chosen) {
    if (s !== "memory" && s !== "dynamodb") throw new Error(`NATTER_JS_STORES: unknown store ${s}`);
  }
  if (process.env.CI && !chosen.includes("dynamodb")) {
    throw new Error("CI runs the client tests on both stores: NATTER_JS_STORES may not leave out dynamodb");
  }
  return chosen;
}

function base64url(data) {
  return Buffer.from(data).toString("base64url");
}

/** The kid natter-local gives its signing secret when NATTER_SIGNING_KID is unset. */
export const SIGNING_KID = "k1";

/** An HS256 user token. `exp` in seconds since the epoch (default: an hour from now). */
export function mintToken(sub, { exp, secret = SIGNING_SECRET, role, kid = SIGNING_KID } = {}) {
  const header = base64url(JSON.stringify({ alg: "HS256", typ: "JWT", kid }));
  const claims = { sub, exp: exp ?? Math.floor(Date.now() / 1000) + 3600 };
  if (role) claims.role = role;
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  return `${header}.${payload}.${signature}`;
}

export function unique(prefix) {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` (which may be async) until it returns true, or fails after `timeout` ms. */
export async function eventually(check, { timeout = 15000, interval = 50, what = "the condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      if (await check()) return;
      last = undefined;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what}${last ? `: ${last.stack ?? last}` : ""}`);
    }
    await sleep(interval);
  }
}

/** A WebSocket class for the client that records every text frame it received. */
export function recordingWebSocket() {
  const frames = [];
  class Recording extends WebSocket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (e) => {
        if (typeof e.data === "string") frames.push(e.data);
      });
    }
  }
  return { WebSocket: Recording, frames };
}

/**
 * Starts natter-local. `store` is "memory" or "dynamodb"; `args` are extra flags. Resolves to
 * `{url, admin(method, path, body), stop()}`.
 */
export async function startServer({ store = "memory", args = [], devSecrets = false } = {}) {
  const bin = binaryPath();
  const argv = ["--listen", "127.0.0.1:0", ...args];
  if (!args.includes("--ws-max-lifetime")) argv.push("--ws-max-lifetime", String(WS_MAX_LIFETIME));
  const env = { ...process.env, NATTER_SIGNING_SECRET: SIGNING_SECRET, NATTER_SECRET_KEY: SECRET_KEY };
  if (devSecrets) {
    // natter-local's own dev secrets: the only case in which it hands out tokens (the demo page).
    delete env.NATTER_SIGNING_SECRET;
    delete env.NATTER_SECRET_KEY;
  }
  for (const name of ["NATTER_ROLES", "RETENTION_DAYS", "RETENTION_SECONDS", "RECORD_RETENTION_DAYS"]) {
    delete env[name];
  }
  if (store === "dynamodb") {
    const endpoint = process.env.NATTER_TEST_DYNAMODB_ENDPOINT;
    if (!endpoint) {
      throw new Error(
        "NATTER_TEST_DYNAMODB_ENDPOINT is not set: the DynamoDB runs of the client tests need moto. " +
          "Run them through scripts/test, or `scripts/moto npm test` in clients/js " +
          "(NATTER_JS_STORES=memory runs the in-memory ones only)",
      );
    }
    argv.push("--dynamodb-endpoint", endpoint, "--table", unique("natter-js"));
    Object.assign(env, {
      AWS_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID || "test",
      AWS_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY || "test",
      AWS_REGION: env.AWS_REGION || "us-east-1",
      AWS_DEFAULT_REGION: env.AWS_DEFAULT_REGION || "us-east-1",
      AWS_EC2_METADATA_DISABLED: "true",
    });
  } else if (store !== "memory") {
    throw new Error(`unknown store ${store}`);
  }
  const child = spawn(bin, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const url = await new Promise((resolveUrl, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`natter-local did not print its address within 60 s:\n${output}`));
    }, 60000);
    let buffered = "";
    child.stdout.on("data", (chunk) => {
      output += chunk;
      buffered += chunk;
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(buffered);
      if (match) {
        clearTimeout(timer);
        resolveUrl(match[1]);
      }
    });
    child.stderr.on("data", (chunk) => {
      output += chunk;
      if (output.length > 200000) output = output.slice(-100000);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`natter-local exited (${code ?? signal}) before listening:\n${output}`));
    });
  });

  async function admin(method, path, body, token = SECRET_KEY) {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    const json = text ? JSON.parse(text) : null;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
    return json;
  }

  async function stop() {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }

  return { url, store, admin, stop, output: () => output };
}

/** Every message of a conversation as `token`'s user sees it over HTTP, newest first. */
export async function listAll(server, conversationId, token) {
  const all = [];
  let before = null;
  for (;;) {
    const query = `limit=100${before ? `&before=${encodeURIComponent(before)}` : ""}`;
    const page = await server.admin("GET", `/v1/conversations/${encodeURIComponent(conversationId)}/messages?${query}`, undefined, token);
    all.push(...page.data);
    if (page.loadedAll || page.data.length === 0) return all;
    before = page.data[page.data.length - 1].id;
  }
}

/** Sessions made by `open`, closed by `closeAll`. */
export function sessions(Session) {
  const made = [];
  return {
    open(server, user, options = {}) {
      const s = new Session({
        url: server.url,
        token: options.tokenFetcher ? undefined : mintToken(user),
        WebSocket,
        reconnectDelay: 50,
        maxReconnectDelay: 500,
        ...options,
      });
      made.push(s);
      return s;
    },
    closeAll() {
      for (const s of made.splice(0)) s.close();
    },
  };
}

/** Creates a conversation with the secret key, with `participants` as ReadWrite participants. */
export async function conversation(server, participants, id = unique("conv")) {
  await server.admin("PUT", `/v1/conversations/${id}`, { subject: `about ${id}`, participants });
  return id;
}

/**
 * Puts `n` messages into a conversation at once with the secret key's import (100 per request;
 * far quicker than sending them one by one on DynamoDB), oldest first, `senders` taking turns,
 * a few minutes in the past. Resolves to MessageRefs of `session`, in the same order.
 */
export async function importMessages(server, session, conversationId, n, { senders, prefix = "m" }) {
  const ids = [];
  const base = Date.now() - 10 * 60 * 1000;
  for (let from = 0; from < n; from += 100) {
    const batch = [];
    for (let i = from; i < Math.min(n, from + 100); i++) {
      batch.push({ sender: senders[i % senders.length], text: `${prefix} ${i}`, createdAt: base + i * 10 });
    }
    const reply = await server.admin("POST", `/v1/import/conversations/${encodeURIComponent(conversationId)}/messages`, batch);
    ids.push(...reply.messageIds);
  }
  return ids.map((id) => session.conversation(conversationId).message(id));
}

// The connection itself: pings inside the idle timeout, a dead connection found by a missing
// pong, jittered exponential backoff with a cap, one WebSocket per session, close(). These do
// not depend on the store, so they run against an in-memory natter-local (the other suites run
// on both stores).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Session } from "natter-client";
import { conversation, eventually, mintToken, sessions, sleep, startServer, unique } from "./harness.mjs";

describe("the connection", () => {
  let server;
  const s = sessions(Session);
  before(async () => {
    // Idle connections are closed after 2 s; the lifetime is left long.
    server = await startServer({ store: "memory", args: ["--ws-idle-timeout", "2", "--ws-max-lifetime", "7200"] });
  });
  after(async () => {
    s.closeAll();
    await server?.stop();
  });

  test("pings keep an idle connection open; without them the gateway closes it and the client reconnects", async () => {
    const alice = unique("alice");
    const id = await conversation(server, [alice]);
    const pinging = s.open(server, alice, { pingInterval: 500 });
    const silent = s.open(server, alice, { pingInterval: 60000 });
    const subs = [pinging, silent].map((x) => x.conversation(id).subscribeMessages());
    await Promise.all(subs.map((x) => x.connected));
    await sleep(5000);
    assert.equal(pinging.connectionCount, 1, "the pinging session kept its one connection");
    assert.ok(silent.connectionCount >= 2, `the silent one was closed for idleness and reconnected (${silent.connectionCount})`);
    const ref = await pinging.conversation(id).send("still there?");
    await eventually(() => subs.every((x) => x.state.latestSnapshot[0]?.id === ref.id), { what: "both subscriptions to get it" });
  });

  test("a ping without a pong counts as a dead connection: it reconnects", async () => {
    const alice = unique("alice");
    const id = await conversation(server, [alice]);
    let swallow = true;
    // Hides the pongs from the client (the server still sees the pings, so it keeps the
    // connection open: only the client's pong timeout can notice).
    class NoPongs extends WebSocket {
      addEventListener(type, listener, options) {
        if (type !== "message") return super.addEventListener(type, listener, options);
        return super.addEventListener(
          type,
          (event) => {
            if (swallow && typeof event.data === "string" && JSON.parse(event.data).type === "pong") return;
            listener(event);
          },
          options,
        );
      }
    }
    const a = s.open(server, alice, { WebSocket: NoPongs, pingInterval: 300, pongTimeout: 300 });
    const sub = a.conversation(id).subscribeMessages();
    await sub.connected;
    await eventually(() => a.connectionCount >= 3, { timeout: 5000, what: "reconnects after missing pongs" });
    swallow = false;
    const settled = a.connectionCount;
    await sleep(1500);
    assert.equal(a.connectionCount, settled, "with pongs answered it stays connected");
    const ref = await a.conversation(id).send("after");
    await eventually(() => sub.state.latestSnapshot[0]?.id === ref.id, { what: "the subscription to work" });
  });

  test("reconnects back off exponentially with jitter, up to the cap", async () => {
    const alice = unique("alice");
    const attempts = [];
    // A WebSocket that never opens (as when the network is down).
    class Refused {
      constructor() {
        attempts.push(performance.now());
        this.readyState = 0;
        this.listeners = {};
        setTimeout(() => {
          this.readyState = 3;
          for (const l of this.listeners.close ?? []) l({ code: 1006 });
        }, 0);
      }
      addEventListener(type, l) {
        (this.listeners[type] ??= []).push(l);
      }
      send() {}
      close() {}
    }
    const a = s.open(server, alice, { WebSocket: Refused, reconnectDelay: 40, maxReconnectDelay: 320 });
    a.conversation(unique("c")).subscribeMessages();
    await eventually(() => attempts.length >= 8, { timeout: 10000, what: "8 attempts" });
    a.close();
    const gaps = attempts.slice(1).map((t, i) => t - attempts[i]);
    const ceilings = [40, 80, 160, 320, 320, 320, 320];
    const ratios = [];
    for (let i = 0; i < ceilings.length; i++) {
      assert.ok(gaps[i] >= ceilings[i] / 2 - 5, `gap ${i} (${gaps[i].toFixed(0)} ms) at least half of ${ceilings[i]}`);
      assert.ok(gaps[i] <= ceilings[i] + 150, `gap ${i} (${gaps[i].toFixed(0)} ms) at most ${ceilings[i]} (plus the token check)`);
      ratios.push(gaps[i] / ceilings[i]);
    }
    assert.ok(Math.max(...ratios) - Math.min(...ratios) > 0.02, `jittered: ${ratios.map((r) => r.toFixed(2))}`);
    const count = attempts.length;
    await sleep(700);
    assert.equal(attempts.length, count, "close() stops reconnecting");
  });

  test("one WebSocket per session, shared by every subscription and the inbox", async () => {
    const alice = unique("alice");
    const ids = [await conversation(server, [alice]), await conversation(server, [alice]), await conversation(server, [alice])];
    let constructed = 0;
    class Counting extends WebSocket {
      constructor(url) {
        super(url);
        constructed++;
      }
    }
    const a = s.open(server, alice, { WebSocket: Counting, pingInterval: 500 });
    a.on("message", () => {});
    const subs = ids.map((id) => a.conversation(id).subscribeMessages());
    await Promise.all(subs.map((x) => x.connected));
    assert.equal(constructed, 1);
    const refs = await Promise.all(ids.map((id) => a.conversation(id).send(`to ${id}`)));
    await eventually(() => subs.every((x, i) => x.state.latestSnapshot[0]?.id === refs[i].id), { what: "all three" });
    assert.equal(constructed, 1);
  });

  test("close() ends every subscription and the connection; wsUrl is honoured; no WebSocket is a TypeError", async () => {
    const alice = unique("alice");
    const id = await conversation(server, [alice]);
    const urls = [];
    class Recording extends WebSocket {
      constructor(url) {
        urls.push(url);
        super(url);
      }
    }
    const a = new Session({ url: `${server.url}/`, wsUrl: `${server.url.replace("http", "ws")}/ws`, token: mintToken(alice), WebSocket: Recording });
    const sub = a.conversation(id).subscribeMessages();
    await sub.connected;
    assert.equal(urls.length, 1);
    assert.ok(urls[0].startsWith(`${server.url.replace("http", "ws")}/ws?token=`), urls[0]);
    a.close();
    assert.deepEqual(sub.state, { type: "unsubscribed" });
    assert.deepEqual(await sub.terminated, { type: "unsubscribed" });
    const late = a.conversation(id).subscribeMessages();
    assert.deepEqual(late.state, { type: "unsubscribed" });
    await sleep(300);
    assert.equal(urls.length, 1, "no reconnect after close");

    const noWs = new Session({ url: server.url, token: mintToken(alice) });
    const global = globalThis.WebSocket;
    globalThis.WebSocket = undefined;
    try {
      assert.throws(() => noWs.conversation(id).subscribeMessages(), TypeError);
    } finally {
      globalThis.WebSocket = global;
    }
    // HTTP works without a WebSocket.
    assert.equal((await noWs.conversation(id).get()).id, id);
    noWs.close();
    assert.throws(() => new Session({ url: server.url }), TypeError);
  });
});

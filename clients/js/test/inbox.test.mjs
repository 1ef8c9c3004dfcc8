// The inbox in the Webstrates shape: session.message, on("message") once per message id however
// many reconnects replay it, session.messages, deleteMessage and deleteMessages.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Session } from "natter-client";
import { eventually, mintToken, sessions, sleep, startServer, stores, unique, WS_MAX_LIFETIME } from "./harness.mjs";

/** The user's whole inbox over HTTP, oldest first. */
async function serverInbox(server, user) {
  const all = [];
  let after = null;
  for (;;) {
    const page = await server.admin("GET", `/v1/inbox?limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`, undefined, mintToken(user));
    all.push(...page.data);
    if (!page.hasMore || page.data.length === 0) return all;
    after = page.data[page.data.length - 1].messageId;
  }
}

for (const store of stores()) {
  describe(`inbox (${store})`, () => {
    let server;
    const s = sessions(Session);
    before(async () => {
      server = await startServer({ store });
    });
    after(async () => {
      s.closeAll();
      await server?.stop();
    });

    test("message resolves to the stored ids, one per recipient; on('message') delivers live", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const carol = unique("carol");
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const got = [];
      a.on("message", (message, senderId, messageId) => got.push({ message, senderId, messageId }));
      await eventually(() => a.clientId !== null, { what: "alice's hello" });
      const ids = await b.message({ hello: "world", n: [1, 2, 3] }, [alice, carol]);
      assert.equal(ids.length, 2);
      await eventually(() => got.length === 1, { what: "the push" });
      assert.deepEqual(got[0].message, { hello: "world", n: [1, 2, 3] });
      assert.equal(got[0].senderId, bob);
      assert.ok(ids.includes(got[0].messageId));
      assert.deepEqual(a.messages.map((m) => m.messageId), [got[0].messageId]);
      assert.equal(a.messages[0].senderId, bob);
      assert.equal(typeof a.messages[0].createdAt, "number");

      // A client id is a recipient too.
      const [toClient] = await b.message("to your client", a.clientId);
      await eventually(() => got.length === 2, { what: "the message to the client id" });
      assert.equal(got[1].messageId, toClient);
      assert.equal(got[1].message, "to your client");
    });

    test("the replay pages through a big inbox; reconnects fire nothing twice; deletes while away are seen", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const b = s.open(server, bob);
      const sent = [];
      // Eight at a time (one by one is slow on DynamoDB); `sent` ends up oldest first.
      for (let from = 0; from < 105; from += 8) {
        const batch = [];
        for (let i = from; i < Math.min(105, from + 8); i++) batch.push(b.message({ i }, alice));
        for (const ids of await Promise.all(batch)) sent.push(...ids);
      }
      sent.sort();

      const control = { offline: false };
      class Switchable extends WebSocket {
        constructor(url) {
          super(control.offline ? url.replace(/^ws:\/\/127\.0\.0\.1:\d+/, "ws://127.0.0.1:1") : url);
        }
      }
      const a = s.open(server, alice, { WebSocket: Switchable });
      const fired = new Map();
      a.on("message", (message, senderId, messageId) => fired.set(messageId, (fired.get(messageId) ?? 0) + 1));
      await eventually(() => a.messages.length === 105, { what: "the replay of 105 (hello, then inboxMore)" });
      assert.deepEqual(a.messages.map((m) => m.messageId), sent, "oldest first");
      assert.deepEqual(a.messages.map((m) => m.message.i).sort((x, y) => x - y), [...Array(105).keys()]);

      // Live messages, deletes by this session and by another session of alice, and reconnects.
      const other = s.open(server, alice);
      const start = a.connectionCount;
      for (let i = 0; i < 5; i++) {
        sent.push(...(await b.message({ live: i }, alice)));
        await sleep(200);
      }
      await a.deleteMessage(sent[0]);
      assert.ok(!a.messages.some((m) => m.messageId === sent[0]), "deleted at once locally");
      await other.deleteMessage(sent[1]);
      await eventually(() => !a.messages.some((m) => m.messageId === sent[1]), { what: "the inbox.deleted push" });

      // Deleted while alice is offline: the next replay no longer lists it.
      control.offline = true;
      a.connection.drop();
      await other.deleteMessage(sent[2]);
      sent.push(...(await b.message({ away: true }, alice)));
      await sleep(300);
      control.offline = false;
      await eventually(() => a.connectionCount >= start + 2, { timeout: (WS_MAX_LIFETIME + 2) * 2000, what: "two reconnects" });

      const expected = await serverInbox(server, alice);
      await eventually(() => a.messages.length === expected.length, { what: "the inbox to settle" });
      assert.deepEqual(a.messages, expected, "session.messages is the server's inbox, oldest first");
      assert.ok(!a.messages.some((m) => m.messageId === sent[2]), "the message deleted while away is gone");
      assert.equal(fired.size, sent.length, "every message fired");
      for (const id of sent) assert.equal(fired.get(id), 1, `fired once: ${id}`);

      await a.deleteMessages();
      assert.deepEqual(a.messages, []);
      assert.deepEqual(await serverInbox(server, alice), []);
      // A reconnect after deleting all replays nothing and fires nothing.
      const count = a.connectionCount;
      a.connection.drop();
      await eventually(() => a.connectionCount > count, { what: "a reconnect" });
      await sleep(300);
      assert.deepEqual(a.messages, []);
      for (const id of sent) assert.equal(fired.get(id), 1);
    });

    test("off removes a listener", async () => {
      const alice = unique("alice");
      const a = s.open(server, alice);
      const b = s.open(server, unique("bob"));
      let first = 0;
      let second = 0;
      const l1 = () => first++;
      a.on("message", l1);
      a.on("message", () => second++);
      await eventually(() => a.clientId !== null, { what: "hello" });
      await b.message(1, alice);
      await eventually(() => first === 1 && second === 1, { what: "both listeners" });
      a.off("message", l1);
      await b.message(2, alice);
      await eventually(() => second === 2, { what: "the second listener" });
      assert.equal(first, 1);
      assert.throws(() => a.on("nope", () => {}), TypeError);
    });
  });
}

// MessageSubscription: its states, live changes, snapshot identity, loadMore's bounds and
// coalescing, unsubscribe, errors, and truncated messages, over a real natter-local whose
// connections are cut every few seconds.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Session, NatterError } from "natter-client";
import {
  conversation,
  eventually,
  importMessages,
  listAll,
  mintToken,
  recordingWebSocket,
  sessions,
  startServer,
  stores,
  unique,
} from "./harness.mjs";

/** A callback that keeps every snapshot it was given. */
function recorder() {
  const calls = [];
  const cb = (messages, loadedAll) => calls.push({ messages, loadedAll });
  cb.calls = calls;
  cb.last = () => calls[calls.length - 1];
  return cb;
}

async function sendMany(conv, n, prefix = "m") {
  const refs = [];
  for (let i = 0; i < n; i++) refs.push(await conv.send(`${prefix} ${i}`));
  return refs;
}

for (const store of stores()) {
  describe(`MessageSubscription (${store})`, () => {
    let server;
    const s = sessions(Session);
    before(async () => {
      server = await startServer({ store });
    });
    after(async () => {
      s.closeAll();
      await server?.stop();
    });

    test("pending, then active with the newest 30 newest first; live sends, edits, reactions and deletes", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const refs = await importMessages(server, b, id, 35, { senders: [bob] });

      const cb = recorder();
      const sub = a.conversation(id).subscribeMessages(cb);
      assert.deepEqual(sub.state, { type: "pending" });
      const active = await sub.connected;
      assert.equal(active.type, "active");
      assert.equal(active, sub.state);
      assert.equal(active.loadedAll, false);
      assert.equal(active.latestSnapshot.length, 30);
      assert.deepEqual(
        active.latestSnapshot.map((m) => m.id),
        refs.slice(5).reverse().map((r) => r.id),
        "the newest 30, newest first",
      );
      assert.equal(cb.calls.length, 1);
      assert.equal(cb.last().messages, active.latestSnapshot);

      const fresh = await b.conversation(id).send("live!");
      await eventually(() => sub.state.latestSnapshot[0].id === fresh.id, { what: "the new message" });
      assert.equal(sub.state.latestSnapshot[0].plaintext, "live!");
      assert.equal(sub.state.latestSnapshot.length, 31);

      await fresh.edit("live, edited");
      await eventually(() => sub.state.latestSnapshot[0].plaintext === "live, edited", { what: "the edit" });

      await b.conversation(id).message(fresh.id).reaction("🎉").add();
      await eventually(() => sub.state.latestSnapshot[0].reactions.length === 1, { what: "bob's reaction" });
      assert.deepEqual(sub.state.latestSnapshot[0].reactions, [{ emoji: "🎉", count: 1, currentUserReacted: false }]);
      await a.conversation(id).message(fresh.id).reaction("🎉").add();
      await eventually(() => sub.state.latestSnapshot[0].reactions[0]?.count === 2, { what: "alice's reaction" });
      assert.equal(sub.state.latestSnapshot[0].reactions[0].currentUserReacted, true, "the subscriber's own reaction");
      await a.conversation(id).message(fresh.id).reaction("🎉").remove();
      await b.conversation(id).message(fresh.id).reaction("🎉").remove();
      await eventually(() => sub.state.latestSnapshot[0].reactions.length === 0, { what: "reactions removed" });

      await fresh.delete();
      await eventually(() => !sub.state.latestSnapshot.some((m) => m.id === fresh.id), { what: "the delete" });
      // 30, or one more when a reconnect (every 3 s) restored the window while it held 31 and
      // the deleted one was gone by then: a restored window holds at least what it had.
      const shown = sub.state.latestSnapshot;
      assert.ok(shown.length === 30 || shown.length === 31, `${shown.length} messages`);

      // What the subscriber shows is the server's state.
      assert.deepEqual(shown, (await listAll(server, id, mintToken(alice))).slice(0, shown.length));
      sub.unsubscribe();
    });

    test("an unchanged message keeps its object; a changed window is a new array", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const a = s.open(server, alice);
      const refs = await sendMany(a.conversation(id), 3);
      const cb = recorder();
      const sub = a.conversation(id).subscribeMessages(cb);
      const first = (await sub.connected).latestSnapshot;
      await refs[1].edit("changed");
      await eventually(() => sub.state.latestSnapshot[1].plaintext === "changed", { what: "the edit" });
      const second = sub.state.latestSnapshot;
      assert.notEqual(second, first, "a new array");
      assert.equal(second[0], first[0], "the unchanged newest message is the same object");
      assert.equal(second[2], first[2], "the unchanged oldest message is the same object");
      assert.notEqual(second[1], first[1], "the edited one is a new object");
      assert.equal(first[1].plaintext, "m 1", "an old snapshot is not mutated");

      await refs[0].reaction("👍").add();
      await eventually(() => sub.state.latestSnapshot[2].reactions.length === 1, { what: "the reaction" });
      const third = sub.state.latestSnapshot;
      assert.equal(third[0], second[0]);
      assert.equal(third[1], second[1]);
      assert.notEqual(third[2], second[2]);

      // A reconnect re-reads the window: nothing changed, so no callback and the same objects.
      const before = cb.calls.length;
      const count = a.connectionCount;
      a.connection.drop();
      await eventually(() => a.connectionCount > count, { what: "a reconnect" });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(cb.calls.length, before, "no callback for a window that did not change");
      assert.equal(sub.state.latestSnapshot, third);
      sub.unsubscribe();
    });

    test("loadMore: bounds, coalescing, loadedAll", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const a = s.open(server, alice);
      const refs = await importMessages(server, a, id, 75, { senders: [alice] });
      const cb = recorder();
      const sub = a.conversation(id).subscribeMessages(cb);
      await sub.connected;
      for (const bad of [0, 101, 1.5, -1, NaN, "10"]) {
        await assert.rejects(sub.loadMore(bad), RangeError, `loadMore(${bad})`);
      }
      assert.equal(sub.state.latestSnapshot.length, 30, "a refused loadMore changes nothing");

      const one = sub.loadMore(20);
      const two = sub.loadMore(20);
      const three = sub.loadMore(5);
      assert.equal(one, two, "calls made while one is loading share its promise");
      assert.equal(one, three);
      await Promise.all([one, two, three]);
      assert.equal(sub.state.latestSnapshot.length, 50, "they shared one page of 20");
      assert.equal(sub.state.loadedAll, false);
      await sub.loadMore(); // default 30: 25 remain
      assert.equal(sub.state.latestSnapshot.length, 75);
      assert.equal(sub.state.loadedAll, true);
      assert.deepEqual(
        sub.state.latestSnapshot.map((m) => m.id),
        refs.map((r) => r.id).reverse(),
      );
      assert.equal(cb.last().loadedAll, true);
      const calls = cb.calls.length;
      await sub.loadMore(10); // nothing older: resolves, nothing changes
      assert.equal(cb.calls.length, calls);

      // An edit of the oldest message now reaches the window.
      await refs[0].edit("the very first, edited");
      await eventually(() => sub.state.latestSnapshot[74].plaintext === "the very first, edited", { what: "the old edit" });
      sub.unsubscribe();
    });

    test("unsubscribe: state unsubscribed, terminated resolves, no more callbacks", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const a = s.open(server, alice);
      await a.conversation(id).send("one");
      const cb = recorder();
      const sub = a.conversation(id).subscribeMessages(cb);
      await sub.connected;
      sub.unsubscribe();
      assert.deepEqual(sub.state, { type: "unsubscribed" });
      assert.deepEqual(await sub.terminated, { type: "unsubscribed" });
      const calls = cb.calls.length;
      await a.conversation(id).send("two");
      await new Promise((r) => setTimeout(r, 700));
      assert.equal(cb.calls.length, calls);
      await sub.loadMore(5); // a no-op once ended
      sub.unsubscribe(); // twice is fine

      // Unsubscribing before it is active rejects `connected`.
      const early = a.conversation(id).subscribeMessages();
      early.unsubscribe();
      await assert.rejects(early.connected);
      assert.deepEqual(await early.terminated, { type: "unsubscribed" });
    });

    test("a subscription to a conversation the user is not in ends in state error (not_found)", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [unique("bob")]);
      const a = s.open(server, alice);
      const sub = a.conversation(id).subscribeMessages();
      const error = await sub.connected.then(
        () => null,
        (e) => e,
      );
      assert.ok(error instanceof NatterError, `${error}`);
      assert.equal(error.code, "not_found");
      assert.equal(error.status, 404);
      const ended = await sub.terminated;
      assert.equal(ended.type, "error");
      assert.equal(ended.error, error);
      assert.equal(sub.state, ended);
    });

    test("a reply's referencedMessage follows edits, reactions and the deletion of the message it replies to", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const original = await b.conversation(id).send("the question");
      const reply = await a.conversation(id).send({ text: "the answer", referencedMessage: original });
      const sub = a.conversation(id).subscribeMessages();
      await sub.connected;
      const token = mintToken(alice);
      const matchesServer = async () => {
        assert.deepEqual(sub.state.latestSnapshot, await listAll(server, id, token));
        return true;
      };
      await original.edit("the question, edited");
      await original.reaction("🤔").add();
      await a.conversation(id).message(original.id).reaction("🤔").add();
      await eventually(() => sub.state.latestSnapshot[0].referencedMessage?.reactions[0]?.count === 2, { what: "the reply's copy" });
      assert.equal(sub.state.latestSnapshot[0].id, reply.id);
      assert.equal(sub.state.latestSnapshot[0].referencedMessage.plaintext, "the question, edited");
      assert.equal(sub.state.latestSnapshot[0].referencedMessage.reactions[0].currentUserReacted, true);
      await eventually(matchesServer, { what: "the server's snapshots" });
      await original.delete();
      await eventually(() => sub.state.latestSnapshot.length === 1, { what: "the delete" });
      assert.equal(sub.state.latestSnapshot[0].referencedMessage, null);
      await eventually(matchesServer, { what: "the server's snapshots after the delete" });
      sub.unsubscribe();
    });

    test("a subscriber removed from the conversation ends in state error at its next loadMore or reconnect", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const a = s.open(server, alice);
      await importMessages(server, a, id, 40, { senders: [alice] });
      const first = a.conversation(id).subscribeMessages();
      const second = a.conversation(id).subscribeMessages();
      await Promise.all([first.connected, second.connected]);
      await server.admin("DELETE", `/v1/conversations/${id}/participants/${alice}`);
      await first.loadMore(5);
      const ended = await first.terminated;
      assert.equal(ended.type, "error");
      assert.equal(ended.error.code, "not_found");
      assert.equal(first.state, ended);
      // The other one finds out when it subscribes again after a reconnect.
      a.connection.drop();
      const ended2 = await second.terminated;
      assert.equal(ended2.type, "error");
      assert.equal(ended2.error.code, "not_found");
    });

    test("a refused token without a tokenFetcher ends subscriptions with unauthorized", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const session = s.open(server, alice, { token: mintToken(alice, { exp: Math.floor(Date.now() / 1000) - 5 }) });
      const sub = session.conversation(id).subscribeMessages();
      const ended = await sub.terminated;
      assert.equal(ended.type, "error");
      assert.equal(ended.error.code, "unauthorized");
      assert.equal(ended.error.status, 401);
    });

    test("tokenFetcher is called again when a connect gets 401", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      let calls = 0;
      const session = s.open(server, alice, {
        tokenFetcher: async () => (++calls === 1 ? mintToken(alice, { exp: Math.floor(Date.now() / 1000) - 5 }) : mintToken(alice)),
      });
      await session.conversation(id).send("hello");
      // The HTTP call renewed the expired token already; expire it again for the connect.
      assert.equal(calls, 2);
      const other = s.open(server, alice, {
        tokenFetcher: async () => (++calls === 3 ? mintToken(alice, { exp: Math.floor(Date.now() / 1000) - 5 }) : mintToken(alice)),
      });
      const sub = other.conversation(id).subscribeMessages();
      const active = await sub.connected;
      assert.equal(active.latestSnapshot[0].plaintext, "hello");
      assert.equal(calls, 4, "the refused connect asked for a new token");
    });

    test("truncated messages in replies and pushes are fetched whole before a callback sees them", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const recording = recordingWebSocket();
      const a = s.open(server, alice, { WebSocket: recording.WebSocket });
      await a.conversation(id).send("small");
      const cb = recorder();
      const sub = a.conversation(id).subscribeMessages(cb);
      await sub.connected;
      // 50 custom values of 4 KiB: the snapshot is ~200 KiB, too big for a 128 KiB frame.
      const custom = {};
      for (let i = 0; i < 50; i++) custom[`k${i}`] = String(i % 10).repeat(4096);
      const big = await a.conversation(id).send({ text: "big", custom });
      await eventually(() => sub.state.latestSnapshot[0]?.id === big.id, { what: "the big message" });
      const shown = sub.state.latestSnapshot[0];
      assert.equal(shown.truncated, undefined);
      assert.equal(shown.plaintext, "big");
      assert.deepEqual(shown.custom, custom);
      assert.ok(
        recording.frames.some((f) => f.includes('"truncated":true') && f.includes(big.id)),
        "the push carried the short form",
      );
      for (const call of cb.calls) for (const m of call.messages) assert.equal(m.truncated, undefined);

      await big.edit({ custom: { k0: "short now" } });
      await eventually(() => sub.state.latestSnapshot[0].custom.k0 === "short now", { what: "the big edit" });

      // A new subscription's first reply holds it truncated too.
      const before = recording.frames.length;
      const second = a.conversation(id).subscribeMessages();
      const active = await second.connected;
      assert.equal(active.latestSnapshot[0].id, big.id);
      assert.equal(active.latestSnapshot[0].custom.k1, custom.k1);
      assert.ok(recording.frames.slice(before).some((f) => f.includes('"type":"subscription"') && f.includes('"truncated":true')));
      sub.unsubscribe();
      second.unsubscribe();
    });
  });
}

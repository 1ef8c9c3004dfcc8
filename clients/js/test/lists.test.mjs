// Read state and conversation lists through the client: markAsRead/markAsUnread and the counts
// that get() shows, and session.subscribeConversations (order, live moves, joins, reads, leaves,
// loadMore, snapshot identity, reconnects), over a real natter-local whose connections are cut
// every few seconds.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Session } from "natter-client";
import { conversation, eventually, mintToken, sessions, sleep, startServer, stores, unique } from "./harness.mjs";

/** A callback that keeps every list it was given. */
function recorder() {
  const calls = [];
  const cb = (conversations, loadedAll) => calls.push({ conversations, loadedAll });
  cb.calls = calls;
  cb.last = () => calls[calls.length - 1];
  return cb;
}

const ids = (list) => list.map((c) => c.id);

/** The user's whole list over HTTP, latest activity first. */
async function listOf(server, user) {
  const all = [];
  let before = null;
  for (;;) {
    const query = `limit=100${before ? `&before=${encodeURIComponent(before)}` : ""}`;
    const page = await server.admin("GET", `/v1/users/${encodeURIComponent(user)}/conversations?${query}`, undefined, mintToken(user));
    all.push(...page.data);
    if (page.loadedAll || page.data.length === 0) return all;
    before = page.data[page.data.length - 1].id;
  }
}

for (const store of stores()) {
  describe(`read state and conversation lists (${store})`, () => {
    let server;
    const s = sessions(Session);
    before(async () => {
      server = await startServer({ store });
    });
    after(async () => {
      s.closeAll();
      await server?.stop();
    });

    test("unread counts, markAsRead, markAsUnread and everyoneReadUntil through get()", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const a = s.open(server, alice);
      const b = s.open(server, bob);

      const fresh = await a.conversation(id).get();
      assert.equal(fresh.access, "ReadWrite");
      assert.equal(typeof fresh.joinedAt, "number");
      assert.equal(fresh.lastMessage, null);
      assert.equal(fresh.unreadMessageCount, 0);
      assert.equal(fresh.isUnread, false);
      assert.equal(fresh.readUntil, null);
      assert.equal(fresh.everyoneReadUntil, null);

      for (const text of ["one", "two", "three"]) await b.conversation(id).send(text);
      const unread = await a.conversation(id).get();
      assert.equal(unread.unreadMessageCount, 3);
      assert.equal(unread.isUnread, true);
      assert.equal(unread.readUntil, null);
      assert.equal(unread.lastMessage.plaintext, "three");
      assert.equal(unread.lastMessage.sender.id, bob);
      assert.equal((await b.conversation(id).get()).unreadMessageCount, 0, "one's own messages are never unread");

      await a.conversation(id).markAsRead();
      const read = await a.conversation(id).get();
      assert.equal(read.unreadMessageCount, 0);
      assert.equal(read.isUnread, false);
      assert.equal(typeof read.readUntil, "number");
      assert.ok(read.readUntil >= unread.lastMessage.createdAt, "readUntil covers the last message");
      assert.equal(read.everyoneReadUntil, null, "bob never read");

      await a.conversation(id).markAsUnread();
      const marked = await a.conversation(id).get();
      assert.equal(marked.isUnread, true);
      assert.equal(marked.unreadMessageCount, 0);
      assert.equal(marked.readUntil, read.readUntil);

      await b.conversation(id).markAsRead();
      const both = await a.conversation(id).get();
      assert.equal(both.everyoneReadUntil, read.readUntil, "the earlier of the two reads");
      assert.equal(both.isUnread, true, "bob's read does not clear alice's mark");
      await a.conversation(id).markAsRead();
      const again = await a.conversation(id).get();
      assert.equal(again.isUnread, false);
      assert.ok(again.readUntil >= read.readUntil);

      await b.conversation(id).send("four");
      const one = await a.conversation(id).get();
      assert.equal(one.unreadMessageCount, 1);
      assert.equal(one.isUnread, true);

      const stranger = s.open(server, unique("eve"));
      await assert.rejects(stranger.conversation(id).markAsRead(), { code: "not_found", status: 404 });
      await assert.rejects(stranger.conversation(id).markAsUnread(), { code: "not_found", status: 404 });
    });

    test("subscribeConversations: latest activity first, live moves, joins, reads and leaves", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const older = await conversation(server, [alice, bob]);
      await b.conversation(older).send("old news");
      await sleep(5);
      const newer = await conversation(server, [alice, bob]);
      await b.conversation(newer).send("new news");

      const cb = recorder();
      const sub = a.subscribeConversations(cb);
      assert.deepEqual(sub.state, { type: "pending" });
      const active = await sub.connected;
      assert.equal(active, sub.state);
      assert.equal(active.loadedAll, true);
      assert.deepEqual(ids(active.latestSnapshot), [newer, older], "latest activity first");
      assert.equal(active.latestSnapshot[0].lastMessage.plaintext, "new news");
      assert.equal(active.latestSnapshot[0].unreadMessageCount, 1);
      assert.equal(active.latestSnapshot[0].isUnread, true);
      assert.deepEqual(active.latestSnapshot, await listOf(server, alice), "the server's list");
      assert.equal(cb.calls.length, 1);
      assert.equal(cb.last().conversations, active.latestSnapshot);

      // A message in the older conversation moves it to the front; the other keeps its object.
      const first = sub.state.latestSnapshot;
      await b.conversation(older).send("news again");
      await eventually(() => sub.state.latestSnapshot[0].id === older, { what: "the older conversation first" });
      const moved = sub.state.latestSnapshot;
      assert.notEqual(moved, first, "a changed list is a new array");
      assert.equal(moved[0].lastMessage.plaintext, "news again");
      assert.equal(moved[0].unreadMessageCount, 2);
      assert.equal(moved[1], first[0], "the unchanged conversation is the same object");
      assert.equal(first[1].lastMessage.plaintext, "old news", "an old snapshot is not mutated");
      assert.equal(cb.last().conversations, sub.state.latestSnapshot);

      // A conversation alice is added to enters the list at the front.
      const joined = unique("conv");
      await b.conversation(joined).set({ subject: "new one", participants: [alice] });
      await eventually(() => sub.state.latestSnapshot[0]?.id === joined, { what: "the joined conversation" });
      assert.equal(sub.state.latestSnapshot[0].subject, "new one");
      assert.equal(sub.state.latestSnapshot.length, 3);

      // A read updates it in place.
      await a.conversation(older).markAsRead();
      await eventually(() => sub.state.latestSnapshot.find((c) => c.id === older)?.unreadMessageCount === 0, { what: "the read" });
      const readOne = sub.state.latestSnapshot.find((c) => c.id === older);
      assert.equal(readOne.isUnread, false);
      assert.equal(typeof readOne.readUntil, "number");
      await a.conversation(older).markAsUnread();
      await eventually(() => sub.state.latestSnapshot.find((c) => c.id === older)?.isUnread === true, { what: "the mark-unread" });

      // A subject change shows too.
      await b.conversation(newer).set({ subject: "renamed" });
      await eventually(() => sub.state.latestSnapshot.find((c) => c.id === newer)?.subject === "renamed", { what: "the subject" });

      // Leaving removes it.
      await a.conversation(newer).participant(alice).delete();
      await eventually(() => !sub.state.latestSnapshot.some((c) => c.id === newer), { what: "the conversation left" });
      assert.deepEqual(ids(sub.state.latestSnapshot), [joined, older]);

      assert.deepEqual(sub.state.latestSnapshot, await listOf(server, alice), "the server's list at the end");
      sub.unsubscribe();
      assert.deepEqual(sub.state, { type: "unsubscribed" });
      assert.deepEqual(await sub.terminated, { type: "unsubscribed" });
      const calls = cb.calls.length;
      await b.conversation(older).send("after unsubscribe");
      await sleep(500);
      assert.equal(cb.calls.length, calls, "no callback after unsubscribe");
    });

    test("loadMore pages the rest with loadedAll, and a reconnect restores the whole window", async () => {
      const alice = unique("alice");
      const a = s.open(server, alice);
      const made = [];
      for (let i = 0; i < 27; i++) {
        made.push(await conversation(server, [alice]));
        await sleep(3); // distinct joinedAt, so the order is by joining alone
      }
      const cb = recorder();
      const sub = a.subscribeConversations(cb);
      const active = await sub.connected;
      assert.equal(active.latestSnapshot.length, 20, "the first 20");
      assert.equal(active.loadedAll, false);
      assert.deepEqual(ids(active.latestSnapshot), made.slice(7).reverse(), "latest joined first");
      for (const bad of [0, 101, 1.5, "5"]) await assert.rejects(sub.loadMore(bad), RangeError);

      const one = sub.loadMore(5);
      const two = sub.loadMore(5);
      await Promise.all([one, two]);
      assert.equal(sub.state.latestSnapshot.length, 25, "calls made while one loads share its page");
      assert.equal(sub.state.loadedAll, false);
      await sub.loadMore();
      assert.equal(sub.state.latestSnapshot.length, 27);
      assert.equal(sub.state.loadedAll, true);
      assert.deepEqual(ids(sub.state.latestSnapshot), [...made].reverse());

      // The gateway cuts every connection after 3 s: across reconnects the window keeps all 27,
      // and what changed meanwhile shows.
      const window = sub.state.latestSnapshot;
      const count = a.connectionCount;
      await eventually(() => a.connectionCount > count, { what: "a reconnect", timeout: 20000 });
      await sleep(300);
      assert.equal(sub.state.latestSnapshot.length, 27, "the restored window holds everything it had");
      assert.equal(sub.state.latestSnapshot, window, "nothing changed: the same array");

      a.connection.drop();
      await a.conversation(made[0]).send("while away");
      await eventually(() => sub.state.latestSnapshot[0]?.id === made[0], { what: "the message sent while away" });
      await eventually(async () => {
        const list = sub.state.latestSnapshot;
        return list.length === 27 && JSON.stringify(list) === JSON.stringify(await listOf(server, alice));
      }, { what: "the server's list after the reconnect" });
      assert.equal(sub.state.latestSnapshot[1], window[0], "an unchanged conversation keeps its object across reconnects");
      sub.unsubscribe();
    });

    test("pushes that arrive while the first window is read are applied after it", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const a = s.open(server, alice);
      const b = s.open(server, bob);
      const id = await conversation(server, [alice, bob]);
      const sub = a.subscribeConversations();
      const sending = (async () => {
        for (let i = 0; i < 5; i++) await b.conversation(id).send(`burst ${i}`);
      })();
      await sub.connected;
      await sending;
      await eventually(() => sub.state.latestSnapshot[0]?.lastMessage?.plaintext === "burst 4", { what: "the last of the burst" });
      await eventually(() => sub.state.latestSnapshot[0]?.unreadMessageCount === 5, { what: "five unread" });
      sub.unsubscribe();
    });
  });
}

// Connections that heal: natter-local cuts every connection 3 s after it connected, and the tests
// cut some more themselves; a subscriber must end with exactly the server's state.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { Session } from "natter-client";
import { conversation, eventually, importMessages, listAll, mintToken, sessions, sleep, startServer, stores, unique } from "./harness.mjs";

/** A WebSocket class that can be taken offline: while offline, connects go to a closed port. */
function switchableWebSocket() {
  const control = { offline: false, opened: 0 };
  control.WebSocket = class extends WebSocket {
    constructor(url) {
      super(control.offline ? url.replace(/^ws:\/\/127\.0\.0\.1:\d+/, "ws://127.0.0.1:1") : url);
      this.addEventListener("open", () => control.opened++);
    }
  };
  return control;
}

/** A small deterministic random number generator, so a failure can be replayed. */
function random(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const EMOJI = ["👍", "🎉", "🚀", ":cat_roomba:"];

for (const store of stores()) {
  describe(`reconnecting (${store})`, () => {
    let server;
    const s = sessions(Session);
    before(async () => {
      server = await startServer({ store });
    });
    after(async () => {
      s.closeAll();
      await server?.stop();
    });

    test("a subscriber whose connection is cut while others send, edit, react and delete ends with the server's state", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const carol = unique("carol");
      const id = await conversation(server, [alice, bob, carol]);
      const a = s.open(server, alice);
      const writers = [s.open(server, bob), s.open(server, carol), a];
      const initial = (await importMessages(server, a, id, 60, { senders: [bob, carol], prefix: "before" })).map((r) => r.id);

      let callbacks = 0;
      let lastCallback = null;
      const sub = a.conversation(id).subscribeMessages((messages) => {
        callbacks++;
        lastCallback = messages;
      });
      await sub.connected;
      await sub.loadMore(20);
      assert.equal(sub.state.latestSnapshot.length, 50);
      const windowStart = initial[10];
      assert.equal(sub.state.latestSnapshot[49].id, windowStart);

      const rand = random(store === "memory" ? 12345 : 54321);
      const live = new Set(initial.slice(10));
      const pick = () => [...live][Math.floor(rand() * live.size)];
      const started = Date.now();
      const connectionsBefore = a.connectionCount;
      let op = 0;
      // At least 40 changes over at least 10 s. The test drops alice's connection twice in the
      // middle of the traffic, each time once it is open and waiting until it is open again, so
      // both drops are reconnects; and with at most three connections over 10 s one would live
      // past the gateway's 3 s lifetime, so the gateway cuts it at least once more.
      while (op < 40 || Date.now() - started < 10000) {
        const who = writers[Math.floor(rand() * 3)];
        const conv = who.conversation(id);
        const r = rand();
        if (op === 12 || op === 30) {
          await eventually(() => a.connection.open, { what: "alice's connection to be open" });
          const opened = a.connectionCount;
          a.connection.drop();
          await eventually(() => a.connectionCount > opened, { what: "alice to reconnect after the drop" });
        }
        op++;
        if (r < 0.3 || live.size < 5) {
          const reply = rand() < 0.3 ? pick() : undefined;
          const ref = await conv.send(reply ? { text: `reply ${op}`, referencedMessage: reply } : `new ${op}`);
          live.add(ref.id);
        } else if (r < 0.5) {
          const mid = pick();
          const sender = (await conv.message(mid).get())?.sender?.id;
          const owner = writers.find((w) => w.userId === sender);
          if (owner) await owner.conversation(id).message(mid).edit(`edited ${op}`);
        } else if (r < 0.75) {
          await conv.message(pick()).reaction(EMOJI[Math.floor(rand() * EMOJI.length)]).add();
        } else if (r < 0.88) {
          await conv.message(pick()).reaction(EMOJI[Math.floor(rand() * EMOJI.length)]).remove();
        } else {
          const mid = pick();
          const sender = (await conv.message(mid).get())?.sender?.id;
          const owner = writers.find((w) => w.userId === sender);
          if (owner) {
            await owner.conversation(id).message(mid).delete();
            live.delete(mid);
          }
        }
        await sleep(60);
      }
      assert.ok(op >= 40, `made ${op} changes`);

      const token = mintToken(alice);
      let expected;
      await eventually(
        async () => {
          // The restored window reaches at least as far back as it did (further when messages
          // in it were deleted meanwhile: the client then asks for a few more).
          const shown = sub.state.latestSnapshot;
          const oldest = shown.at(-1).id;
          const all = await listAll(server, id, token);
          assert.ok(
            !all.some((m) => m.id >= windowStart && m.id < oldest),
            "no message of the old window is missing at its start",
          );
          const start = oldest < windowStart ? oldest : windowStart;
          expected = all.filter((m) => m.id >= start);
          assert.deepEqual(shown, expected);
          return true;
        },
        { timeout: 20000, interval: 250, what: "the subscriber to show the server's state" },
      );
      assert.ok(a.connectionCount >= connectionsBefore + 3, `reconnected ${a.connectionCount - connectionsBefore} times`);
      assert.equal(lastCallback, sub.state.latestSnapshot, "the last callback had the final window");
      assert.ok(callbacks >= 3, `${callbacks} callbacks`);
      assert.ok(expected.some((m) => m.reactions.length > 0), "some reactions survive");
      assert.ok(expected.some((m) => m.editedAt !== null), "some edits");
      assert.ok(expected.some((m) => m.referencedMessage !== null), "some replies");
      assert.ok(initial.slice(10).some((mid) => !expected.some((m) => m.id === mid)), "some deletes");
      sub.unsubscribe();
    });

    test("changes made while a subscriber is offline show in its next callback, whole", async () => {
      const alice = unique("alice");
      const bob = unique("bob");
      const id = await conversation(server, [alice, bob]);
      const control = switchableWebSocket();
      const a = s.open(server, alice, { WebSocket: control.WebSocket });
      const b = s.open(server, bob);
      const conv = b.conversation(id);
      const refs = await importMessages(server, b, id, 40, { senders: [bob] });
      const snapshots = [];
      const sub = a.conversation(id).subscribeMessages((messages) => snapshots.push(messages));
      await sub.connected;
      await sub.loadMore(10); // the window: all 40
      assert.equal(sub.state.latestSnapshot.length, 40);
      assert.equal(sub.state.loadedAll, true);

      control.offline = true;
      a.connection.drop();
      const seen = snapshots.length;
      // While alice is away: a new message, an edit and reactions on the oldest ones, deletes.
      const fresh = await conv.send("while you were away");
      await refs[0].edit("oldest, edited");
      await refs[1].reaction("🚀").add();
      await a.conversation(id).message(refs[1].id).reaction("🚀").add();
      await refs[2].delete();
      await refs[39].delete();
      await sleep(300);
      assert.equal(snapshots.length, seen, "no callback while offline");

      control.offline = false;
      await eventually(() => snapshots.length > seen, { what: "the callback after reconnecting" });
      const next = snapshots[seen];
      const expected = await listAll(server, id, mintToken(alice));
      assert.deepEqual(next, expected, "the first callback after the reconnect shows every change");
      assert.equal(next[0].id, fresh.id);
      assert.equal(next.at(-1).plaintext, "oldest, edited");
      assert.deepEqual(next.at(-2).reactions, [{ emoji: "🚀", count: 2, currentUserReacted: true }]);
      assert.equal(next.length, 39);
      assert.equal(sub.state.loadedAll, true);
      sub.unsubscribe();
    });

    test("a window restored after a reconnect reaches as far back as it did", async () => {
      const alice = unique("alice");
      const id = await conversation(server, [alice]);
      const a = s.open(server, alice);
      const conv = a.conversation(id);
      const refs = await importMessages(server, a, id, 160, { senders: [alice] });
      const sub = conv.subscribeMessages();
      await sub.connected;
      await sub.loadMore(100);
      assert.equal(sub.state.latestSnapshot.length, 130);
      const count = a.connectionCount;
      a.connection.drop();
      await eventually(() => a.connectionCount > count, { what: "the reconnect" });
      // An edit of the oldest message in the window is pushed only if the restored window reaches it.
      await sleep(300);
      await refs[30].edit("deep edit");
      await eventually(() => sub.state.latestSnapshot.at(-1).plaintext === "deep edit", { what: "the deep edit" });
      assert.equal(sub.state.latestSnapshot.length, 130);
      assert.equal(sub.state.latestSnapshot.at(-1).id, refs[30].id);
      sub.unsubscribe();
    });
  });
}

// The HTTP API's shapes that no WebSocket frame carries (docs/openapi.yaml). The frame and
// snapshot types (MessageSnapshot, UserSnapshot, InboxMessageSnapshot, ...) are generated from the
// server's schema into ./protocol.ts.
import type { ContentBlock, UserSnapshot } from "./protocol.js";

/** A participant's access: `Read` may read and subscribe, `ReadWrite` may also write. */
export type Access = "ReadWrite" | "Read";

/** `GET /v1/conversations/{id}`, as the viewing participant sees it. */
export interface ConversationSnapshot {
  id: string;
  subject: string | null;
  photoUrl: string | null;
  custom: { [key: string]: string };
  createdAt: number;
  participants: { [userId: string]: { access: Access } };
}

/** `session.user(id).set(...)`: a field left out keeps its value, `null` clears it. */
export interface UserUpdate {
  name?: string | null;
  photoUrl?: string | null;
  /** Only the secret key may set a role; a user token gets 403. */
  role?: string | null;
  /** Replaces the whole map; `null` clears it. */
  custom?: { [key: string]: string } | null;
}

/** `conversation.set(...)`: a field left out keeps its value, `null` clears it. */
export interface ConversationUpdate {
  subject?: string | null;
  photoUrl?: string | null;
  /** Replaces the whole map; `null` clears it. */
  custom?: { [key: string]: string } | null;
  /** Users to add as `ReadWrite` participants (existing ones keep their access). */
  participants?: string[];
}

/** What `conversation.send(...)` takes besides a plain string (which is `{text}`). */
export interface SendParams {
  /** Text with chat formatting (`*bold*`, `_italic_`, lists, links, ...), parsed by the server. */
  text?: string;
  /** Content as blocks; exactly one of `text` and `content`. */
  content?: ContentBlock[];
  custom?: { [key: string]: string };
  /** The message this one replies to: its id or a MessageRef. */
  referencedMessage?: string | { id: string };
  /** A retry with the same key returns the message the first request created. */
  idempotencyKey?: string;
}

/** What `message.edit(...)` takes besides a plain string (which is `{text}`). */
export interface EditParams {
  text?: string;
  content?: ContentBlock[];
  /** A patch: a `null` value removes a key; `custom: null` clears the map. */
  custom?: { [key: string]: string | null } | null;
}

export type { UserSnapshot };

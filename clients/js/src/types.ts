// The HTTP API's shapes that no WebSocket frame carries (docs/openapi.yaml). The frame and
// snapshot types (MessageSnapshot, UserSnapshot, InboxMessageSnapshot, ...) are generated from the
// server's schema into ./protocol.ts.
import type {
  Access,
  ContentBlock,
  ConversationSnapshot as FrameConversationSnapshot,
  MessageSnapshot,
  UserSnapshot,
} from "./protocol.js";

/**
 * `GET /v1/conversations/{id}`, a page of `GET /v1/users/{id}/conversations`, and what
 * `subscribeConversations` shows: the conversation as the viewing participant sees it.
 *
 * - `lastMessage`: the newest live message (always whole: the client fetches a truncated one).
 * - `access`, `joinedAt`: the viewer's access and when they joined (ms).
 * - `readUntil`: when the viewer last read it (`markAsRead`), or null.
 * - `unreadMessageCount`: the others' messages after `readUntil`.
 * - `everyoneReadUntil`: the earliest `readUntil` among the participants (null while one never read).
 * - `isUnread`: `unreadMessageCount > 0`, or marked unread (`markAsUnread`) since the last read.
 *
 * The viewer fields are null only for the secret key, which this client does not use.
 */
export interface ConversationSnapshot extends Omit<FrameConversationSnapshot, "lastMessage"> {
  lastMessage: MessageSnapshot | null;
}

/** What `conversation.subscribeTyping(...)` shows: who else is typing there, typing longest first. */
export interface TypingSnapshot {
  users: UserSnapshot[];
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

export type { Access, UserSnapshot };

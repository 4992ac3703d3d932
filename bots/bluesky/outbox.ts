/**
 * Everything the bot sends: replies in a thread (correct root/parent refs,
 * facets for the mention and for links, ≤ 300 graphemes a post, a thread
 * only when the text needs it) and chat messages (≤ 1,000 graphemes each,
 * in order) through the PDS's chat proxy.
 */
import { ForeignPostError } from "../../src/announce/public.ts";
import { RichText, type AtpAgent, type Agent, type ChatBskyConvoDefs } from "@atproto/api";
import { TID } from "@atproto/common-web";
import type { Logger } from "../../src/logger.ts";
import { ChatUnavailableError, errorName, isAuthFailure, isTransient } from "./errors.ts";
import { CHAT_LIMIT, graphemeCount, POST_LIMIT, splitGraphemes } from "./text.ts";

export interface StrongRef {
  uri: string;
  cid: string;
}

/** Where a reply goes: the post being answered and its thread's root. */
export interface ThreadRef {
  parent: StrongRef;
  root: StrongRef;
}

/** How far a thread answer has got: each post's text and record key, fixed up front, and the posts made. */
export interface ThreadProgress {
  texts: string[];
  rkeys: string[];
  posted: StrongRef[];
}

export interface Person {
  did: string;
  handle: string | null;
}

/** The chat proxy: Bluesky's chat service, reached through the PDS (atproto-proxy). */
export const CHAT_SERVICE_DID = "did:web:api.bsky.chat";

/** Chat refusals that mean "this person does not accept messages from the bot". */
const REFUSALS = new Set(["NotFollowedBySender", "MessagesDisabled", "RecipientNotFound", "BlockedActor", "AccountSuspended", "InvalidRequest"]);

/** The reason a DM was not sent when chat is refused to the bot itself (see ChatUnavailableError). */
export const CHAT_UNAVAILABLE = "ChatUnavailable";

/**
 * Sending on behalf of a claimed event: `beforeSend` runs before each piece
 * (and throws to stop: the claim was lost), `signal` aborts requests under way.
 */
export interface SendGuard {
  beforeSend?: () => Promise<void>;
  signal?: AbortSignal;
}

/** How far a chat answer has got: pieces sent before (`skip`), and each piece sent now (`onSent`). */
export interface ChatProgress extends SendGuard {
  skip?: number;
  onSent?: (sent: number) => Promise<void>;
  /**
   * On a retry: when the message being answered was sent (ISO). The first
   * piece still to send may have reached the conversation on the try whose
   * answer was lost (only that one: each piece is recorded once its send is
   * answered). If the conversation's newest message is the bot's, sent
   * since then, with that piece's text, it counts as sent.
   */
  resumedSince?: string;
}

export type DmResult = { delivered: true; convoId: string } | { delivered: false; reason: string };

type Facet = NonNullable<RichText["facets"]>[number];

/** Facets for links, and for mentions of the people whose DIDs we know. */
export function facetsFor(text: string, known: readonly Person[]): Facet[] | undefined {
  const rt = new RichText({ text });
  rt.detectFacetsWithoutResolution();
  const facets: Facet[] = [];
  for (const facet of rt.facets ?? []) {
    const features = facet.features.flatMap((feature) => {
      if (feature.$type !== "app.bsky.richtext.facet#mention") return [feature];
      const handle = String((feature as { did: string }).did).toLowerCase();
      const person = known.find((p) => p.handle?.toLowerCase() === handle);
      return person ? [{ ...feature, did: person.did }] : [];
    });
    if (features.length) facets.push({ ...facet, features });
  }
  return facets.length ? facets : undefined;
}

export class Outbox {
  private readonly agent: AtpAgent;
  private readonly chatAgent: Agent;
  private readonly langs: string[];
  private readonly log: Logger | undefined;
  /** Whether the last chat call found chat refused to the bot's session (an app password without DM access). */
  chatUnavailable = false;
  constructor(agent: AtpAgent, options: { langs?: string[]; log?: Logger } = {}) {
    this.agent = agent;
    this.chatAgent = agent.withProxy("bsky_chat", CHAT_SERVICE_DID);
    this.langs = options.langs ?? [];
    this.log = options.log;
  }

  /**
   * Makes a chat call (through the PDS's chat proxy). When the PDS refuses it
   * for want of rights while the session itself works — an app password made
   * without access to direct messages — throws a ChatUnavailableError, and
   * says so once in an error line (again only after chat has worked since).
   */
  async chat<T>(call: (chat: Agent) => Promise<T>): Promise<T> {
    let result: T;
    try {
      result = await call(this.chatAgent);
    } catch (error) {
      if ((isAuthFailure(error) || (error as { status?: number }).status === 403) && (await this.sessionWorks())) {
        const refused = new ChatUnavailableError(error);
        if (!this.chatUnavailable) {
          this.log?.error(
            { err: refused.message },
            "Bluesky chat refused: the bot's app password needs access to direct messages (make one with “Allow access to your direct messages” ticked and set it as BLUESKY_APP_PASSWORD); until then mentions are answered in public only",
          );
        }
        this.chatUnavailable = true;
        throw refused;
      }
      throw error;
    }
    if (this.chatUnavailable) {
      this.chatUnavailable = false;
      this.log?.info("Bluesky chat available again");
    }
    return result;
  }

  /** The bot's DID: its repository. */
  private repo(): string {
    const did = this.agent.session?.did;
    if (!did) throw new Error("the Bluesky bot is not logged in");
    return did;
  }

  /** Whether the bot's session is accepted by its PDS (a call that is not proxied). */
  private async sessionWorks(): Promise<boolean> {
    if (!this.agent.hasSession) return false;
    try {
      await this.agent.com.atproto.server.getSession();
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Posts `texts` as replies under `ref`, the first one mentioning `to`;
   * returns the posts made. With `progress`, every post's record key is
   * chosen and saved before the first one goes out, and each post made is
   * saved at once: a retry (after a crash or a lost answer) continues the
   * thread where it stopped, and checks whether its next post was in fact
   * made, so no post appears twice.
   */
  async replyInThread(
    ref: ThreadRef,
    texts: readonly string[],
    to: Person,
    language?: string,
    progress: { saved?: ThreadProgress; save?: (progress: ThreadProgress) => Promise<void> } & SendGuard = {},
  ): Promise<StrongRef[]> {
    // A retry posts exactly what the first try planned (the person's handle,
    // hence the split, may have changed since).
    const saved = progress.saved;
    const resuming = saved !== undefined && Array.isArray(saved.texts) && saved.texts.length === saved.rkeys?.length && Array.isArray(saved.posted);
    const state: ThreadProgress = resuming ? saved : this.planThread(texts, to);
    if (!resuming) await progress.save?.(state);
    const repo = this.repo();
    let parent = state.posted.at(-1) ?? ref.parent;
    for (let i = state.posted.length; i < state.texts.length; i++) {
      const rkey = state.rkeys[i]!;
      const text = state.texts[i]!;
      // After a crash or a lost answer, the next post may already exist.
      let made = resuming && i === state.posted.length ? await this.existingPost(repo, rkey) : undefined;
      if (!made) {
        await progress.beforeSend?.();
        try {
          made = await this.createPost(
            repo,
            rkey,
            text,
            [to],
            { reply: { root: ref.root, parent }, ...(language ? { langs: [language] } : this.langs.length ? { langs: this.langs } : {}) },
            progress.signal,
          );
        } catch (error) {
          // Refused because the key is taken: another worker that took the
          // answer over posted it. Anything else is a real failure.
          made = isTransient(error) ? undefined : await this.existingPost(repo, rkey);
          if (!made) throw error;
        }
      }
      state.posted.push(made);
      parent = made;
      await progress.save?.(state);
    }
    return state.posted;
  }

  /**
   * A post of the bot's own (not a reply), with facets for links and for
   * mentions of `known`. Its record key is chosen here, so when the PDS's
   * answer is lost the post is looked for before the error is believed
   * (a caller that retried would post it twice).
   */
  async post(text: string, known: readonly Person[]): Promise<StrongRef> {
    if (graphemeCount(text) > POST_LIMIT) throw new Error(`a post takes at most ${POST_LIMIT} graphemes`);
    const repo = this.repo();
    const rkey = TID.nextStr();
    try {
      return await this.createPost(repo, rkey, text, known, this.langs.length ? { langs: this.langs } : {});
    } catch (error) {
      const made = await this.existingPost(repo, rkey).catch(() => undefined);
      if (made) return made;
      throw error;
    }
  }

  /**
   * Deletes one of the bot's own posts (`at://<its DID>/app.bsky.feed.post/<rkey>`);
   * a post already gone is not an error. Anyone else's URI is refused.
   */
  async deletePost(uri: string): Promise<void> {
    const repo = this.repo();
    const match = /^at:\/\/([^/]+)\/app\.bsky\.feed\.post\/([^/]+)$/.exec(uri);
    if (!match || match[1] !== repo) throw new ForeignPostError(uri);
    // deleteRecord of a record that is not there succeeds: nothing to check first.
    await this.agent.com.atproto.repo.deleteRecord({ repo, collection: "app.bsky.feed.post", rkey: match[2]! });
  }

  /** Creates a post at `rkey` in `repo`, with facets for links and for mentions of `known`. */
  private async createPost(
    repo: string,
    rkey: string,
    text: string,
    known: readonly Person[],
    fields: { reply?: { root: StrongRef; parent: StrongRef }; langs?: string[] },
    signal?: AbortSignal,
  ): Promise<StrongRef> {
    const facets = facetsFor(text, known);
    const res = await this.agent.com.atproto.repo.createRecord(
      {
        repo,
        collection: "app.bsky.feed.post",
        rkey,
        record: { $type: "app.bsky.feed.post", text, ...(facets ? { facets } : {}), ...fields, createdAt: new Date().toISOString() },
      },
      signal ? { signal } : {},
    );
    return { uri: res.data.uri, cid: res.data.cid };
  }

  /** The posts of a thread answer: texts (the first mentioning `to`), and a record key for each. */
  private planThread(texts: readonly string[], to: Person): ThreadProgress {
    const prefix = to.handle ? `@${to.handle} ` : "";
    const pieces = texts.flatMap((t) => splitGraphemes(t, POST_LIMIT - graphemeCount(prefix)));
    return { texts: pieces.map((p, i) => (i === 0 ? prefix + p : p)), rkeys: pieces.map(() => TID.nextStr()), posted: [] };
  }

  /** The bot's post at `rkey`, if it exists (a create whose answer was lost). */
  private async existingPost(repo: string, rkey: string): Promise<StrongRef | undefined> {
    try {
      const res = await this.agent.com.atproto.repo.getRecord({ repo, collection: "app.bsky.feed.post", rkey });
      return res.data.cid ? { uri: res.data.uri, cid: res.data.cid } : undefined;
    } catch (error) {
      // A refused session (400 ExpiredToken…) says nothing about the post: not "not found".
      if (isAuthFailure(error)) throw error;
      if (errorName(error) === "RecordNotFound" || (error as { status?: number }).status === 400) return undefined;
      throw error;
    }
  }

  /** Opens (or finds) the conversation with `to` and sends `texts`; a refusal is a result, not an error. */
  async sendDm(to: Person, texts: readonly string[], progress: ChatProgress = {}): Promise<DmResult> {
    let convoId: string;
    try {
      const options = progress.signal ? { signal: progress.signal } : {};
      const res = await this.chat((chat) => chat.chat.bsky.convo.getConvoForMembers({ members: [to.did] }, options));
      convoId = res.data.convo.id;
    } catch (error) {
      if (error instanceof ChatUnavailableError) return { delivered: false, reason: CHAT_UNAVAILABLE };
      const name = errorName(error);
      if (!isTransient(error) && name && REFUSALS.has(name)) return { delivered: false, reason: name };
      throw error;
    }
    const sent = await this.sendToConvo(convoId, texts, [to], progress);
    return sent === true ? { delivered: true, convoId } : { delivered: false, reason: sent };
  }

  /** Whether the conversation's newest message is the bot's, sent since `since`, reading `text`. */
  private async lastSentWas(convoId: string, text: string, since: string, options: { signal?: AbortSignal }): Promise<boolean> {
    const res = await this.chat((chat) => chat.chat.bsky.convo.getMessages({ convoId, limit: 1 }, options));
    const newest = res.data.messages[0] as ChatBskyConvoDefs.MessageView | undefined;
    if (newest?.$type !== "chat.bsky.convo.defs#messageView" || newest.sender.did !== this.agent.did) return false;
    return Date.parse(newest.sentAt) >= Date.parse(since) && newest.text.trim() === text.trim();
  }

  /** Sends `texts` into a conversation, in order; true, or the refusal's name. */
  async sendToConvo(
    convoId: string,
    texts: readonly string[],
    known: readonly Person[] = [],
    progress: ChatProgress = {},
  ): Promise<true | string> {
    const pieces = texts.flatMap((t) => splitGraphemes(t, CHAT_LIMIT));
    const options = progress.signal ? { signal: progress.signal } : {};
    // `skip`: pieces an earlier try sent already; `onSent`: how many are sent now.
    let start = progress.skip ?? 0;
    if (progress.resumedSince !== undefined && start < pieces.length) {
      try {
        if (await this.lastSentWas(convoId, pieces[start]!, progress.resumedSince, options)) await progress.onSent?.(++start);
      } catch (error) {
        if (error instanceof ChatUnavailableError) return CHAT_UNAVAILABLE;
        const name = errorName(error);
        if (!isTransient(error) && name && REFUSALS.has(name)) return name;
        throw error;
      }
    }
    for (let i = start; i < pieces.length; i++) {
      const piece = pieces[i]!;
      await progress.beforeSend?.();
      try {
        const facets = facetsFor(piece, known);
        await this.chat((chat) => chat.chat.bsky.convo.sendMessage({ convoId, message: { text: piece, ...(facets ? { facets } : {}) } }, options));
        await progress.onSent?.(i + 1);
      } catch (error) {
        if (error instanceof ChatUnavailableError) return CHAT_UNAVAILABLE;
        const name = errorName(error);
        if (!isTransient(error) && name && REFUSALS.has(name)) return name;
        throw error;
      }
    }
    return true;
  }
}

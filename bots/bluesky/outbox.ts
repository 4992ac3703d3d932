/**
 * Everything the bot sends: replies in a thread (correct root/parent refs,
 * facets for the mention and for links, ≤ 300 graphemes a post, a thread
 * only when the text needs it) and chat messages (≤ 1,000 graphemes each,
 * in order) through the PDS's chat proxy.
 */
import { RichText, type AtpAgent, type Agent } from "@atproto/api";
import { errorName, isTransient } from "./errors.ts";
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

export interface Person {
  did: string;
  handle: string | null;
}

/** The chat proxy: Bluesky's chat service, reached through the PDS (atproto-proxy). */
export const CHAT_SERVICE_DID = "did:web:api.bsky.chat";

/** Chat refusals that mean "this person does not accept messages from the bot". */
const REFUSALS = new Set(["NotFollowedBySender", "MessagesDisabled", "RecipientNotFound", "BlockedActor", "AccountSuspended", "InvalidRequest"]);

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
  readonly chat: Agent;
  private readonly langs: string[];
  constructor(agent: AtpAgent, options: { langs?: string[] } = {}) {
    this.agent = agent;
    this.chat = agent.withProxy("bsky_chat", CHAT_SERVICE_DID);
    this.langs = options.langs ?? [];
  }

  /** Posts `texts` as replies under `ref`, the first one mentioning `to`; returns the posts made. */
  async replyInThread(ref: ThreadRef, texts: readonly string[], to: Person, language?: string): Promise<StrongRef[]> {
    const prefix = to.handle ? `@${to.handle} ` : "";
    const limit = POST_LIMIT - graphemeCount(prefix);
    const pieces = texts.flatMap((t) => splitGraphemes(t, limit));
    const made: StrongRef[] = [];
    let parent = ref.parent;
    for (const [i, piece] of pieces.entries()) {
      const text = i === 0 ? prefix + piece : piece;
      const facets = facetsFor(text, [to]);
      const res = await this.agent.com.atproto.repo.createRecord({
        repo: this.agent.session!.did,
        collection: "app.bsky.feed.post",
        record: {
          $type: "app.bsky.feed.post",
          text,
          ...(facets ? { facets } : {}),
          reply: { root: ref.root, parent },
          ...(language ? { langs: [language] } : this.langs.length ? { langs: this.langs } : {}),
          createdAt: new Date().toISOString(),
        },
      });
      parent = { uri: res.data.uri, cid: res.data.cid };
      made.push(parent);
    }
    return made;
  }

  /** Opens (or finds) the conversation with `to` and sends `texts`; a refusal is a result, not an error. */
  async sendDm(to: Person, texts: readonly string[]): Promise<DmResult> {
    let convoId: string;
    try {
      const res = await this.chat.chat.bsky.convo.getConvoForMembers({ members: [to.did] });
      convoId = res.data.convo.id;
    } catch (error) {
      const name = errorName(error);
      if (!isTransient(error) && name && REFUSALS.has(name)) return { delivered: false, reason: name };
      throw error;
    }
    const sent = await this.sendToConvo(convoId, texts, [to]);
    return sent === true ? { delivered: true, convoId } : { delivered: false, reason: sent };
  }

  /** Sends `texts` into a conversation, in order; true, or the refusal's name. */
  async sendToConvo(
    convoId: string,
    texts: readonly string[],
    known: readonly Person[] = [],
    progress: { skip?: number; onSent?: (sent: number) => Promise<void> } = {},
  ): Promise<true | string> {
    const pieces = texts.flatMap((t) => splitGraphemes(t, CHAT_LIMIT));
    // `skip`: pieces an earlier try sent already; `onSent`: how many are sent now.
    for (let i = progress.skip ?? 0; i < pieces.length; i++) {
      const piece = pieces[i]!;
      try {
        const facets = facetsFor(piece, known);
        await this.chat.chat.bsky.convo.sendMessage({ convoId, message: { text: piece, ...(facets ? { facets } : {}) } });
        await progress.onSent?.(i + 1);
      } catch (error) {
        const name = errorName(error);
        if (!isTransient(error) && name && REFUSALS.has(name)) return name;
        throw error;
      }
    }
    return true;
  }
}

/**
 * What the bots sent to the sandbox's accounts, gathered where real clients
 * would see it: fediverse notes in each user's inbox on the local server;
 * Bluesky chat messages in the chat service and the bot's posts on its repo.
 */
import { htmlToText, type BotNames } from "../conversation/parse.ts";
import type { SandboxWorld } from "./world.ts";

export interface SandboxReply {
  /** The account it went to (label), or null for a post to everyone. */
  to: string | null;
  platform: "fediverse" | "bluesky";
  kind: "dm" | "public reply" | "public post";
  text: string;
}

const PUBLIC = "https://www.w3.org/ns/activitystreams#Public";

/** Hands out each reply once, in the order it was found. */
export class ReplyCollector {
  private readonly world: SandboxWorld;
  private readonly names: BotNames;
  private readonly seenNotes = new Map<string, number>();
  private seenPublicNotes = 0;
  private readonly seenChat = new Map<string, number>();
  private readonly seenPosts = new Set<string>();

  constructor(world: SandboxWorld, names: BotNames) {
    this.world = world;
    this.names = names;
  }

  /** Replies that arrived since the last call. */
  async collect(): Promise<SandboxReply[]> {
    const out: SandboxReply[] = [];
    const botDid = this.world.blueskyBot.did;
    for (const account of this.world.accounts.values()) {
      if (account.platform === "fediverse") {
        const notes = account.user.notes;
        for (const note of notes.slice(this.seenNotes.get(account.label) ?? 0)) {
          const isPublic = [...note.to, ...note.cc].includes(PUBLIC);
          out.push({ to: account.label, platform: "fediverse", kind: isPublic ? "public reply" : "dm", text: htmlToText(note.content, this.names) });
        }
        this.seenNotes.set(account.label, notes.length);
      } else {
        const messages = this.world.bluesky.chat.messagesBetween(account.user.did, botDid).filter((m) => m.sender.did === botDid);
        for (const m of messages.slice(this.seenChat.get(account.label) ?? 0)) {
          out.push({ to: account.label, platform: "bluesky", kind: "dm", text: m.text });
        }
        this.seenChat.set(account.label, messages.length);
      }
    }
    const publicNotes = this.world.fediverse.publicNotes;
    for (const note of publicNotes.slice(this.seenPublicNotes)) {
      out.push({ to: null, platform: "fediverse", kind: "public post", text: htmlToText(note.content, this.names) });
    }
    this.seenPublicNotes = publicNotes.length;
    out.push(...(await this.newPosts()));
    return out;
  }

  /** The Bluesky bot's new posts: replies in a thread, or announcements. */
  private async newPosts(): Promise<SandboxReply[]> {
    const bot = this.world.blueskyBot;
    const res = await bot.agent.com.atproto.repo.listRecords({ repo: bot.did, collection: "app.bsky.feed.post", limit: 50 });
    const labelOf = new Map([...this.world.accounts.values()].filter((a) => a.platform === "bluesky").map((a) => [a.user.did, a.label]));
    const out: SandboxReply[] = [];
    // listRecords is newest first.
    for (const record of [...res.data.records].reverse()) {
      if (this.seenPosts.has(record.uri)) continue;
      this.seenPosts.add(record.uri);
      const post = record.value as { text?: string; reply?: { parent?: { uri?: string } } };
      const parentDid = post.reply?.parent?.uri?.split("/")[2];
      out.push({
        to: parentDid ? (labelOf.get(parentDid) ?? parentDid) : null,
        platform: "bluesky",
        kind: parentDid ? "public reply" : "public post",
        text: post.text ?? "",
      });
    }
    return out;
  }
}

/** `reconnexion → alice (fediverse DM): …`, the text indented under it when it runs to several lines. */
export function formatReply(reply: SandboxReply): string {
  const where = `${reply.platform} ${reply.kind}`;
  const head = reply.to ? `reconnexion → ${reply.to} (${where})` : `reconnexion (${where})`;
  const lines = reply.text.trim().split("\n");
  return lines.length === 1 ? `  ${head}: ${lines[0]}` : `  ${head}:\n${lines.map((l) => `    ${l}`).join("\n")}`;
}

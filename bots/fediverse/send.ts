/**
 * Sending the bot's answer: each piece a direct Note — addressed to the
 * sender only (no Public, no followers), mentioning them (tag and text),
 * `inReplyTo` their message — wrapped in a Create and queued through
 * Fedify (retried with back-off), in order.
 */
import type { Context } from "@fedify/fedify";
import { Create, Mention, Note, type Actor } from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { randomUUID } from "node:crypto";
import { mentionName, splitForNotes, toHtml, type Recipient } from "./reply.ts";

export async function sendReplies(
  ctx: Context<void>,
  options: { username: string; recipient: Actor; acct: string | null; inReplyTo?: URL; texts: readonly string[] },
): Promise<number> {
  const { recipient } = options;
  if (!recipient.id) return 0;
  const to: Recipient = {
    id: recipient.id.href,
    url: recipient.url instanceof URL ? recipient.url.href : null,
    acct: options.acct,
    username: recipient.preferredUsername?.toString() ?? null,
  };
  const botId = ctx.getActorUri(options.username);
  const pieces = splitForNotes(options.texts, to);
  for (const piece of pieces) {
    const id = new URL(`/fediverse/notes/${randomUUID()}`, ctx.canonicalOrigin);
    const published = Temporal.Now.instant() as never;
    const note = new Note({
      id,
      attribution: botId,
      to: recipient.id,
      content: toHtml(piece, to),
      mediaType: "text/html",
      tags: [new Mention({ href: recipient.id, name: mentionName(to) })],
      ...(options.inReplyTo ? { replyTarget: options.inReplyTo } : {}),
      published,
      sensitive: false,
    });
    await ctx.sendActivity(
      { identifier: options.username },
      recipient,
      new Create({ id: new URL(`${id.href}/activity`), actor: botId, to: recipient.id, object: note, published }),
      { orderingKey: recipient.id.href },
    );
  }
  return pieces.length;
}

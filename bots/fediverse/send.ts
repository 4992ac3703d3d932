/**
 * Sending the bot's answer: each piece a direct Note — addressed to the
 * sender only (no Public, no followers), mentioning them (tag and text),
 * `inReplyTo` their message — wrapped in a Create and queued for
 * Fedify's outbox (retried with back-off), in order, without signatures in
 * the body (see direct.ts).
 */
import type { Context } from "@fedify/fedify";
import { Create, Mention, Note, type Actor } from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { randomUUID } from "node:crypto";
import type { DirectDelivery } from "./direct.ts";
import { mentionName, splitForNotes, toHtml, type Recipient } from "./reply.ts";

export async function sendReplies(
  ctx: Context<void>,
  options: { username: string; delivery: DirectDelivery; recipient: Actor; acct: string | null; inReplyTo?: URL; texts: readonly string[] },
): Promise<number> {
  const { recipient } = options;
  if (!recipient.id || !recipient.inboxId) return 0;
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
    const create = new Create({ id: new URL(`${id.href}/activity`), actor: botId, to: recipient.id, object: note, published });
    await options.delivery.send(ctx, recipient, create, recipient.id.href);
  }
  return pieces.length;
}

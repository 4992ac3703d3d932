/**
 * Direct messages go out signed for delivery only: an HTTP signature on the
 * request, no Linked Data signature and no integrity proof in the body.
 *
 * Why: a signature inside the body travels with the message. Whoever
 * receives an LD-signed or proof-carrying DM can forward it and anyone can
 * check that the bot wrote it — and the bot's DMs list the accounts a
 * person followed. Mastodon signs only public and unlisted posts for the
 * same reason (`sign?` is `distributable?`). It is also most of what a
 * reply cost here: Fedify's `sendActivity` always makes both (2 ms of
 * JSON-LD canonicalization and 0.8 ms for the proof per note, measured).
 *
 * So the activity is queued straight into Fedify's outbox queue, in the
 * message form Fedify's own `sendActivity` queues (Fedify's `OutboxMessage`
 * of @fedify/fedify 2.3), and Fedify's outbox worker delivers it as usual:
 * HTTP signature, retries with back-off, circuit breaker. The tests check
 * what arrives on the wire, so a Fedify release that changes that form
 * fails them rather than the bot.
 */
import { exportJwk, type Context, type MessageQueue } from "@fedify/fedify";
import { getTypeId, type Activity, type Actor } from "@fedify/vocab";
import { randomUUID, type webcrypto } from "node:crypto";

type JsonWebKey = webcrypto.JsonWebKey;

/** The part of Fedify's queued outbox message its worker reads. */
interface OutboxMessage {
  type: "outbox";
  id: string;
  baseUrl: string;
  keys: { keyId: string; privateKey: JsonWebKey }[];
  activity: unknown;
  activityId: string;
  activityType: string;
  inbox: string;
  sharedInbox: false;
  actorIds: string[];
  started: string;
  attempt: 0;
  headers: Record<string, string>;
  orderingKey?: string;
  traceContext: Record<string, string>;
}

export class DirectDelivery {
  private readonly outbox: MessageQueue;
  private readonly username: string;
  private signingKey: Promise<{ keyId: string; privateKey: JsonWebKey }> | undefined;

  constructor(outbox: MessageQueue, username: string) {
    this.outbox = outbox;
    this.username = username;
  }

  /**
   * Queues `activity` for `recipient`'s own inbox. Activities with the same
   * `orderingKey` are delivered in the order they were queued. False when
   * the recipient has no inbox.
   */
  async send(ctx: Context<void>, recipient: Actor, activity: Activity, orderingKey?: string): Promise<boolean> {
    if (!recipient.id || !recipient.inboxId || !activity.id) return false;
    const inbox = recipient.inboxId.href;
    // As Fedify keys its own ordered messages: per recipient server.
    const key = orderingKey === undefined ? undefined : `${orderingKey}\n${recipient.inboxId.origin}`;
    const message: OutboxMessage = {
      type: "outbox",
      id: randomUUID(),
      baseUrl: ctx.origin,
      keys: [await this.key(ctx)],
      // The same bytes as `format: "compact"` for these activities (checked),
      // for less work (0.30 against 0.49 ms a note, measured).
      activity: await activity.toJsonLd(),
      activityId: activity.id.href,
      activityType: getTypeId(activity)!.href,
      inbox,
      sharedInbox: false,
      actorIds: [recipient.id.href],
      started: new Date().toISOString(),
      attempt: 0,
      headers: {},
      ...(key === undefined ? {} : { orderingKey: key }),
      traceContext: {},
    };
    await this.outbox.enqueue(message, key === undefined ? undefined : { orderingKey: key });
    return true;
  }

  /** The RSA key HTTP signatures are made with, exported once per process. */
  private key(ctx: Context<void>): Promise<{ keyId: string; privateKey: JsonWebKey }> {
    this.signingKey ??= (async () => {
      // Fedify's ActorKeyPair extends the DOM's CryptoKeyPair, not in this project's libs.
      const pairs = (await ctx.getActorKeyPairs(this.username)) as unknown as { keyId: URL; privateKey: webcrypto.CryptoKey }[];
      const rsa = pairs.find((p) => p.privateKey.algorithm.name === "RSASSA-PKCS1-v1_5");
      if (!rsa) throw new Error("the bot has no RSA key to sign its deliveries with");
      return { keyId: rsa.keyId.href, privateKey: (await exportJwk(rsa.privateKey as never)) as JsonWebKey };
    })().catch((error: unknown) => {
      this.signingKey = undefined;
      throw error;
    });
    return this.signingKey;
  }
}

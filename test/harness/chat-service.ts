/**
 * A small stand-in for Bluesky's chat service (not public code): it speaks
 * the real `chat.bsky.convo.*` XRPC methods the bot uses — getConvoForMembers,
 * getConvo, listConvos, getLog, getMessages, sendMessage, and
 * chat.bsky.group.createGroup for group conversations — and applies the
 * recipients' `chat.bsky.actor.declaration` rules (allowIncoming all /
 * following / none; no declaration = following) to direct messages (who
 * may add whom to a group is not modelled: any member may be added). Callers come through the
 * PDS's atproto-proxy with a service-auth JWT, verified against their DID
 * document, exactly as the real service receives them. Listens on 127.0.0.1.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { IdResolver } from "@atproto/identity";
import { verifyJwt } from "@atproto/xrpc-server";

export const CHAT_DID = "did:web:api.bsky.chat";

interface Message {
  id: string;
  rev: string;
  text: string;
  facets?: unknown[];
  sender: { did: string };
  sentAt: string;
}

interface Convo {
  id: string;
  kind: "direct" | "group";
  /** A group's display name. */
  name?: string;
  createdAt: string;
  members: string[];
  messages: Message[];
  rev: string;
}

interface LogEntry {
  rev: string;
  convoId: string;
  type: "begin" | "message";
  message?: Message;
}

class XrpcFailure extends Error {
  readonly status: number;
  readonly error: string;
  constructor(status: number, error: string, message: string) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

export interface ChatService {
  url: string;
  /** Every message sent, in order (for assertions). */
  messages(): Array<Message & { convoId: string }>;
  /** The messages of the direct conversation between `a` and `b`. */
  messagesBetween(a: string, b: string): Message[];
  /** The messages of one conversation. */
  messagesIn(convoId: string): Message[];
  /** Number of requests per method (for assertions). */
  calls: Map<string, number>;
  close(): Promise<void>;
}

export async function startChatService(options: { plcUrl: string; appviewUrl: string; pdsUrl: string }): Promise<ChatService> {
  const resolver = new IdResolver({ plcUrl: options.plcUrl, fetch: globalThis.fetch });
  const convos = new Map<string, Convo>();
  const log: LogEntry[] = [];
  const calls = new Map<string, number>();
  let counter = 0;
  const nextRev = () => String(++counter).padStart(12, "0");

  const handles = new Map<string, string>();
  async function profile(did: string) {
    let handle = handles.get(did);
    if (!handle) {
      const res = await fetch(`${options.appviewUrl}/xrpc/app.bsky.actor.getProfile?actor=${encodeURIComponent(did)}`);
      handle = res.ok ? ((await res.json()) as { handle: string }).handle : "handle.invalid";
    }
    return { did, handle };
  }

  async function allowIncoming(did: string): Promise<string> {
    const url = `${options.pdsUrl}/xrpc/com.atproto.repo.getRecord?repo=${encodeURIComponent(did)}&collection=chat.bsky.actor.declaration&rkey=self`;
    const res = await fetch(url);
    if (!res.ok) return "following";
    const body = (await res.json()) as { value?: { allowIncoming?: string } };
    return body.value?.allowIncoming ?? "following";
  }

  async function follows(actor: string, other: string): Promise<boolean> {
    const url = `${options.appviewUrl}/xrpc/app.bsky.graph.getRelationships?actor=${encodeURIComponent(actor)}&others=${encodeURIComponent(other)}`;
    const res = await fetch(url);
    if (!res.ok) return false;
    const body = (await res.json()) as { relationships: Array<{ following?: string }> };
    return Boolean(body.relationships[0]?.following);
  }

  /** Whether `sender` may write to `recipient`, as the real service decides. */
  async function checkMayMessage(sender: string, recipient: string) {
    const rule = await allowIncoming(recipient);
    if (rule === "all") return;
    if (rule === "none") throw new XrpcFailure(400, "MessagesDisabled", "recipient has disabled incoming messages");
    if (!(await follows(recipient, sender))) {
      throw new XrpcFailure(400, "NotFollowedBySender", "recipient requires incoming messages to come from someone they follow");
    }
  }

  async function convoView(convo: Convo, viewer: string) {
    const last = convo.messages.at(-1);
    return {
      id: convo.id,
      rev: convo.rev,
      members: await Promise.all(convo.members.map(profile)),
      kind:
        convo.kind === "direct"
          ? { $type: "chat.bsky.convo.defs#directConvo" }
          : {
              $type: "chat.bsky.convo.defs#groupConvo",
              createdAt: convo.createdAt,
              lockStatus: "unlocked",
              lockStatusModerationOverride: false,
              memberCount: convo.members.length,
              memberLimit: 100,
              name: convo.name ?? "",
            },
      ...(last ? { lastMessage: { $type: "chat.bsky.convo.defs#messageView", ...last } } : {}),
      muted: false,
      status: "accepted",
      unreadCount: convo.messages.filter((m) => m.sender.did !== viewer).length,
    };
  }

  function convoFor(id: unknown, viewer: string): Convo {
    const convo = typeof id === "string" ? convos.get(id) : undefined;
    if (!convo || !convo.members.includes(viewer)) throw new XrpcFailure(400, "InvalidRequest", "Convo not found");
    return convo;
  }

  async function authenticate(req: IncomingMessage, lxm: string): Promise<string> {
    const header = req.headers.authorization ?? "";
    if (!header.startsWith("Bearer ")) throw new XrpcFailure(401, "AuthMissing", "Authentication Required");
    const payload = await verifyJwt(header.slice(7), CHAT_DID, lxm, async (iss, forceRefresh) =>
      resolver.did.resolveAtprotoKey(iss, forceRefresh),
    ).catch((error: Error) => {
      throw new XrpcFailure(401, "InvalidToken", error.message);
    });
    return payload.iss;
  }

  async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>) : {};
  }

  const methods: Record<string, (viewer: string, params: URLSearchParams, body: Record<string, unknown>) => Promise<unknown>> = {
    async "chat.bsky.convo.getConvoForMembers"(viewer, params) {
      const members = [...new Set([viewer, ...params.getAll("members")])].sort();
      if (members.length !== 2) throw new XrpcFailure(400, "InvalidRequest", "two members expected");
      let convo = [...convos.values()].find((c) => c.kind === "direct" && c.members.join() === members.join());
      if (!convo) {
        const other = members.find((m) => m !== viewer)!;
        await checkMayMessage(viewer, other);
        convo = { id: `convo${convos.size + 1}`, kind: "direct", createdAt: new Date().toISOString(), members, messages: [], rev: nextRev() };
        convos.set(convo.id, convo);
        log.push({ rev: convo.rev, convoId: convo.id, type: "begin" });
      }
      return { convo: await convoView(convo, viewer) };
    },
    async "chat.bsky.convo.getConvo"(viewer, params) {
      return { convo: await convoView(convoFor(params.get("convoId"), viewer), viewer) };
    },
    async "chat.bsky.convo.listConvos"(viewer) {
      const mine = [...convos.values()].filter((c) => c.members.includes(viewer)).sort((a, b) => b.rev.localeCompare(a.rev));
      return { convos: await Promise.all(mine.map((c) => convoView(c, viewer))) };
    },
    async "chat.bsky.convo.getLog"(viewer, params) {
      const cursor = params.get("cursor") ?? "";
      const entries = log
        .filter((e) => e.rev > cursor && convos.get(e.convoId)!.members.includes(viewer))
        .slice(0, 100);
      return {
        ...(entries.length ? { cursor: entries.at(-1)!.rev } : cursor ? { cursor } : {}),
        logs: entries.map((e) =>
          e.type === "begin"
            ? { $type: "chat.bsky.convo.defs#logBeginConvo", rev: e.rev, convoId: e.convoId }
            : {
                $type: "chat.bsky.convo.defs#logCreateMessage",
                rev: e.rev,
                convoId: e.convoId,
                message: { $type: "chat.bsky.convo.defs#messageView", ...e.message! },
              },
        ),
      };
    },
    async "chat.bsky.convo.getMessages"(viewer, params) {
      const convo = convoFor(params.get("convoId"), viewer);
      const limit = Number(params.get("limit") ?? 50);
      const cursor = params.get("cursor");
      const older = convo.messages.filter((m) => !cursor || m.rev < cursor).reverse().slice(0, limit);
      return {
        messages: older.map((m) => ({ $type: "chat.bsky.convo.defs#messageView", ...m })),
        ...(older.length === limit ? { cursor: older.at(-1)!.rev } : {}),
      };
    },
    async "chat.bsky.convo.sendMessage"(viewer, _params, body) {
      const convo = convoFor(body.convoId, viewer);
      const input = body.message as { text?: unknown; facets?: unknown[] } | undefined;
      if (!input || typeof input.text !== "string") throw new XrpcFailure(400, "InvalidRequest", "message.text required");
      if ([...new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(input.text)].length > 1000) {
        throw new XrpcFailure(400, "InvalidRequest", "message text too long");
      }
      // In a direct conversation the recipient's rules apply until they have written back; a group's members may all write.
      const other = convo.members.find((m) => m !== viewer)!;
      if (convo.kind === "direct" && !convo.messages.some((m) => m.sender.did === other)) await checkMayMessage(viewer, other);
      const message: Message = {
        id: `msg${++counter}`,
        rev: nextRev(),
        text: input.text,
        ...(input.facets ? { facets: input.facets } : {}),
        sender: { did: viewer },
        sentAt: new Date().toISOString(),
      };
      convo.messages.push(message);
      convo.rev = message.rev;
      log.push({ rev: message.rev, convoId: convo.id, type: "message", message });
      return { $type: "chat.bsky.convo.defs#messageView", ...message };
    },
    async "chat.bsky.group.createGroup"(viewer, _params, body) {
      const wanted = Array.isArray(body.members) ? body.members.filter((m): m is string => typeof m === "string") : [];
      if (typeof body.name !== "string" || !wanted.length) throw new XrpcFailure(400, "InvalidRequest", "members and name required");
      const members = [...new Set([viewer, ...wanted])];
      const convo: Convo = { id: `convo${convos.size + 1}`, kind: "group", name: body.name, createdAt: new Date().toISOString(), members, messages: [], rev: nextRev() };
      convos.set(convo.id, convo);
      log.push({ rev: convo.rev, convoId: convo.id, type: "begin" });
      return { convo: await convoView(convo, viewer) };
    },
  };

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === "/.well-known/did.json") {
      send(200, didDocument(CHAT_DID, serviceUrl()));
      return;
    }
    const lxm = url.pathname.replace(/^\/xrpc\//, "");
    const method = methods[lxm];
    if (!url.pathname.startsWith("/xrpc/") || !method) {
      send(501, { error: "MethodNotImplemented", message: `${lxm} is not implemented` });
      return;
    }
    calls.set(lxm, (calls.get(lxm) ?? 0) + 1);
    void (async () => {
      try {
        const viewer = await authenticate(req, lxm);
        const body = req.method === "POST" ? await readBody(req) : {};
        send(200, await method(viewer, url.searchParams, body));
      } catch (error) {
        if (error instanceof XrpcFailure) send(error.status, { error: error.error, message: error.message });
        else send(500, { error: "InternalServerError", message: (error as Error).message });
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const serviceUrl = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: serviceUrl(),
    calls,
    messages: () => [...convos.values()].flatMap((c) => c.messages.map((m) => ({ ...m, convoId: c.id }))).sort((a, b) => a.rev.localeCompare(b.rev)),
    messagesBetween: (a, b) => [...convos.values()].filter((c) => c.kind === "direct" && c.members.includes(a) && c.members.includes(b)).flatMap((c) => c.messages),
    messagesIn: (convoId) => [...(convos.get(convoId)?.messages ?? [])],
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The DID document the PDS resolves `did:web:api.bsky.chat` to. */
export function didDocument(did: string, url: string) {
  return {
    "@context": ["https://www.w3.org/ns/did/v1"],
    id: did,
    service: [{ id: "#bsky_chat", type: "BskyChatService", serviceEndpoint: url }],
  };
}

/**
 * The HTTP side: health, readiness and Prometheus metrics. The bots mount
 * their routes (Fedify, OAuth callbacks, pages) on the same app.
 */
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from "express";
import type { Logger } from "../logger.ts";
import type { Store } from "../store/index.ts";
import type { Locale } from "../conversation/i18n/index.ts";
import { personLocale } from "../conversation/language.ts";
import { html, sendPage, type SafeHtml } from "./html.ts";
import { browserLanguage, prefersPage } from "./link-page.ts";

export interface WebContext {
  store: Store;
  /** Whether the service is ready to take traffic (migrations done, bots up). */
  ready: () => boolean;
  /** Routes mounted by the bots (the fediverse bot's Fedify middleware…). */
  routes?: RequestHandler[];
  log?: Logger;
  /** The language of error pages when the browser asks for none we speak (DEFAULT_LANGUAGE). */
  defaultLanguage?: string;
}

export function createWebApp(ctx: WebContext): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("trust proxy", "loopback");

  app.get("/healthz", (_req, res) => {
    res.type("text/plain").send("ok\n");
  });

  app.get("/readyz", async (_req, res) => {
    try {
      await ctx.store.db`select 1`;
      if (!ctx.ready()) throw new Error("starting");
      res.type("text/plain").send("ready\n");
    } catch {
      res.status(503).type("text/plain").send("not ready\n");
    }
  });

  app.get("/metrics", async (_req, res) => {
    try {
      res.type("text/plain; version=0.0.4").send(await metricsText(ctx.store));
    } catch {
      res.status(503).type("text/plain").send("# store unavailable\n");
    }
  });

  for (const route of ctx.routes ?? []) app.use(route);
  // A person following a stale or mistyped address gets a page in their
  // language; a machine, a plain line.
  app.use((req: Request, res: Response) => {
    answerError(req, res, 404, ctx.defaultLanguage, (l) => [l.web.notFoundTitle, html`<p>${l.web.notFound}</p><p><a href="/">reconnexion</a></p>`], "Not found");
  });
  // Last: an error no route handled — a refusal of the request itself
  // (a body over its limit) keeps its status; the rest is a 500, never a stack trace.
  app.use((error: unknown, req: Request, res: Response, next: NextFunction) => {
    const status = (error as { status?: unknown } | null)?.status;
    const refused = typeof status === "number" && status >= 400 && status < 500;
    if (!refused) ctx.log?.error({ err: error instanceof Error ? error.message : String(error) }, "web: unhandled error");
    if (res.headersSent) return next(error);
    if (refused) answerError(req, res, status, ctx.defaultLanguage, (l) => [l.web.errorTitle, html`<p>${l.web.badRequest}</p>`], "Bad request");
    else answerError(req, res, 500, ctx.defaultLanguage, (l) => [l.web.errorTitle, html`<p>${l.web.internalError}</p>`], "Internal error");
  });
  return app;
}

/** An error page in the browser's language (else `defaultLanguage`), or for a machine `plain`. */
function answerError(req: Request, res: Response, status: number, defaultLanguage: string | undefined, page: (locale: Locale) => [string, SafeHtml], plain: string): void {
  res.set("Cache-Control", "no-store");
  if (!prefersPage(req)) {
    res.status(status).type("text/plain").send(`${plain}\n`);
    return;
  }
  const locale = personLocale(undefined, defaultLanguage ?? "fr", browserLanguage(req));
  const [title, body] = page(locale);
  sendPage(res, { lang: locale.code, title, status, body: html`<h1>${title}</h1>${body}` });
}

/** Store gauges in Prometheus' text format. */
export async function metricsText(store: Store): Promise<string> {
  const [stats, backlog] = await Promise.all([store.stats({ estimateEdges: true }), store.backlog()]);
  const lines = [
    "# HELP reconnexion_people Registered people.",
    "# TYPE reconnexion_people gauge",
    `reconnexion_people ${stats.people}`,
    "# HELP reconnexion_x_follow_edges X follow edges in the store (planner estimate).",
    "# TYPE reconnexion_x_follow_edges gauge",
    `reconnexion_x_follow_edges ${stats.edges}`,
    "# HELP reconnexion_uploaded_archives X archives people uploaded themselves.",
    "# TYPE reconnexion_uploaded_archives gauge",
    `reconnexion_uploaded_archives ${stats.uploadedArchives}`,
    "# HELP reconnexion_identities Identities by platform and verification.",
    "# TYPE reconnexion_identities gauge",
  ];
  for (const [platform, counts] of Object.entries(stats.identities)) {
    for (const v of ["platform", "dm", "archive"] as const) {
      lines.push(`reconnexion_identities{platform="${platform}",verified_by="${v}"} ${counts[v]}`);
    }
  }
  lines.push("# HELP reconnexion_matches Matches by state.", "# TYPE reconnexion_matches gauge");
  for (const [state, n] of Object.entries(stats.matches)) {
    if (state !== "total") lines.push(`reconnexion_matches{state="${state}"} ${n}`);
  }
  lines.push("# HELP reconnexion_reconnect_jobs Unfinished reconnection jobs by state.", "# TYPE reconnexion_reconnect_jobs gauge");
  for (const [state, n] of Object.entries(backlog.reconnectJobs)) lines.push(`reconnexion_reconnect_jobs{state="${state}"} ${n}`);
  lines.push(
    "# HELP reconnexion_fediverse_queue_messages Fediverse activities waiting in a queue (inbox, outbox, fanout), retries included.",
    "# TYPE reconnexion_fediverse_queue_messages gauge",
  );
  for (const [queue, q] of Object.entries(backlog.fediverseQueues)) lines.push(`reconnexion_fediverse_queue_messages{queue="${queue}"} ${q.messages}`);
  lines.push(
    "# HELP reconnexion_fediverse_queue_oldest_seconds How long the oldest message ready in a fediverse queue has waited (0 when none).",
    "# TYPE reconnexion_fediverse_queue_oldest_seconds gauge",
  );
  for (const [queue, q] of Object.entries(backlog.fediverseQueues)) lines.push(`reconnexion_fediverse_queue_oldest_seconds{queue="${queue}"} ${q.oldestReadySeconds}`);
  lines.push(
    "# HELP reconnexion_authorization_revocations Grants waiting to be revoked at their servers (waiting), and of those, how many were tried already (tried: a server that did not answer, or an attempt under way).",
    "# TYPE reconnexion_authorization_revocations gauge",
    `reconnexion_authorization_revocations{state="waiting"} ${backlog.authorizationRevocations.waiting}`,
    `reconnexion_authorization_revocations{state="tried"} ${backlog.authorizationRevocations.tried}`,
  );
  return lines.join("\n") + "\n";
}

/**
 * The HTTP side: health, readiness and Prometheus metrics. The bots mount
 * their routes (Fedify, OAuth callbacks, pages) on the same app.
 */
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response } from "express";
import type { Logger } from "../logger.ts";
import type { Store } from "../store/index.ts";

export interface WebContext {
  store: Store;
  /** Whether the service is ready to take traffic (migrations done, bots up). */
  ready: () => boolean;
  /** Routes mounted by the bots (the fediverse bot's Fedify middleware…). */
  routes?: RequestHandler[];
  log?: Logger;
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
  // Last: an error no route handled gets a plain 500, never a stack trace.
  app.use((error: unknown, _req: Request, res: Response, next: NextFunction) => {
    ctx.log?.error({ err: error instanceof Error ? error.message : String(error) }, "web: unhandled error");
    if (res.headersSent) return next(error);
    res.status(500).type("text/plain").set("Cache-Control", "no-store").send("Internal error\n");
  });
  return app;
}

/** Store gauges in Prometheus' text format. */
export async function metricsText(store: Store): Promise<string> {
  const stats = await store.stats({ estimateEdges: true });
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
  return lines.join("\n") + "\n";
}

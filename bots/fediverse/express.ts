/**
 * Fedify mounted on express. What Fedify serves, it answers; what it does
 * not know goes on to the next route. A request for one of its documents
 * in a format it cannot give (a browser opening the actor's URL) gets its
 * 406 here and goes no further: @fedify/express hands such requests to the
 * next route *and* writes the 406 afterwards, which throws outside any
 * request (and ends the process) once a later handler — the service's 404
 * page — has answered.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { Federation } from "@fedify/fedify";
import type { Request as ERequest, RequestHandler } from "express";

export function fedifyMiddleware(federation: Federation<void>): RequestHandler {
  return (req, res, next) => {
    void (async () => {
      let notFound = false;
      const response = await federation.fetch(toFetchRequest(req), {
        contextData: undefined,
        onNotFound: () => {
          notFound = true;
          return new Response("Not found\n", { status: 404 });
        },
        onNotAcceptable: () => new Response("Not acceptable\n", { status: 406, headers: { "Content-Type": "text/plain", Vary: "Accept" } }),
      });
      if (notFound) return next();
      res.status(response.status);
      response.headers.forEach((value, key) => res.setHeader(key, value));
      if (response.body && req.method !== "HEAD") await pipeline(Readable.fromWeb(response.body as NodeReadableStream), res);
      else res.end();
    })().catch(next);
  };
}

/** The express request as a fetch Request (its body streamed, not read). */
function toFetchRequest(req: ERequest): Request {
  const headers = new Headers();
  for (const [key, value] of Object.entries(req.headers)) {
    if (Array.isArray(value)) for (const v of value) headers.append(key, v);
    else if (typeof value === "string") headers.append(key, value);
  }
  const bodiless = req.method === "GET" || req.method === "HEAD";
  return new Request(`${req.protocol}://${req.header("Host") ?? req.hostname}${req.url}`, {
    method: req.method,
    headers,
    ...(bodiless ? {} : { body: Readable.toWeb(req) as ReadableStream, duplex: "half" }),
  } as RequestInit);
}

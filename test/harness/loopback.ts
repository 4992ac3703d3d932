/**
 * Keeps every server this process starts on 127.0.0.1: `net.Server#listen`
 * calls that name no host (or a wildcard one) get 127.0.0.1. Imported by the
 * Bluesky harness before @atproto/dev-env starts anything, since dev-env
 * listens on all interfaces by default.
 */
import net from "node:net";

const WILDCARDS = new Set(["", "0.0.0.0", "::", "::0"]);
const LOOPBACK = "127.0.0.1";
const marker = Symbol.for("reconnexion.loopbackListen");

type Listen = (this: net.Server, ...args: unknown[]) => net.Server;

function isPort(value: unknown): boolean {
  return typeof value === "number" || (typeof value === "string" && /^\d+$/.test(value));
}

export function forceLoopbackListen(): void {
  const proto = net.Server.prototype as unknown as { listen: Listen; [marker]?: boolean };
  if (proto[marker]) return;
  const original = proto.listen;
  proto.listen = function (this: net.Server, ...args: unknown[]) {
    const [first] = args;
    if (first === undefined || typeof first === "function") {
      // listen() / listen(callback): a random port on all interfaces.
      args = [0, LOOPBACK, ...args.slice(first === undefined ? 1 : 0)];
    } else if (isPort(first)) {
      const second = args[1];
      if (typeof second === "string") {
        if (WILDCARDS.has(second)) args[1] = LOOPBACK;
      } else {
        args.splice(1, 0, LOOPBACK);
      }
    } else if (typeof first === "object" && first !== null && !("_handle" in first) && !("fd" in first)) {
      const options = first as net.ListenOptions;
      if (options.path === undefined && (options.host === undefined || WILDCARDS.has(options.host))) {
        args[0] = { ...options, host: LOOPBACK };
      }
    }
    return original.apply(this, args);
  };
  proto[marker] = true;
}

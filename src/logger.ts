/**
 * The service's structured log (pino, JSON on stderr). Secrets never reach
 * it: known sensitive fields are redacted wherever they appear.
 */
import { pino, type Logger } from "pino";

export type { Logger };

/** The service's logger at `level`, on stderr (or `destination`: tests). */
export function createLogger(level: string, destination: pino.DestinationStream = pino.destination(2)): Logger {
  return pino({
    level,
    base: { service: "reconnexion" },
    redact: {
      paths: [
        "password", "*.password", "appPassword", "*.appPassword", "token", "*.token",
        "accessToken", "*.accessToken", "refreshToken", "*.refreshToken", "secret", "*.secret",
        "authorization", "*.authorization", "headers.authorization", "*.headers.authorization",
        // OAuth authorization codes (an error's `code`, ECONNREFUSED or 23505, stays readable).
        "code", "query.code", "*.query.code", "params.code", "*.params.code", "databaseUrl", "*.databaseUrl",
      ],
      censor: "[redacted]",
    },
  }, destination);
}

/** A database URL with its password hidden, for messages. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(invalid URL)";
  }
}

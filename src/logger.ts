/**
 * The service's structured log (pino, JSON on stderr). Secrets never reach
 * it: known sensitive fields are redacted wherever they appear.
 */
import { pino, type Logger } from "pino";

export type { Logger };

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: "reconnexion" },
    redact: {
      paths: [
        "password", "*.password", "appPassword", "*.appPassword", "token", "*.token",
        "accessToken", "*.accessToken", "refreshToken", "*.refreshToken", "secret", "*.secret",
        "authorization", "*.authorization", "headers.authorization", "*.headers.authorization",
        "code", "*.code", "databaseUrl", "*.databaseUrl",
      ],
      censor: "[redacted]",
    },
  }, pino.destination(2));
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

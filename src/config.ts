/**
 * Environment → typed, validated configuration. The one place that reads
 * `process.env`; everything else receives a `Config`.
 */
import cron from "node-cron";
import { z } from "zod";
import { findLocale, localeCodes } from "./conversation/i18n/index.ts";

const boolean = z
  .enum(["1", "0", "true", "false", "yes", "no", "on", "off", ""])
  .transform((v) => ["1", "true", "yes", "on"].includes(v));

const schema = z.object({
  DATABASE_URL: z.string().url().optional(),
  DATA_DIR: z.string().min(1).default("./data"),
  // Unset: this machine, on PORT (below).
  PUBLIC_URL: z.string().url().optional(),
  HOST: z.string().min(1).default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  FEDIVERSE_BOT_USERNAME: z
    .string()
    .regex(/^[a-z0-9_]{1,30}$/i, "letters, digits and _ only")
    .default("reconnexion"),
  BLUESKY_SERVICE: z.string().url().default("https://bsky.social"),
  BLUESKY_HANDLE: z.string().optional(),
  BLUESKY_APP_PASSWORD: z.string().optional(),
  BLUESKY_PLC_URL: z.string().url().default("https://plc.directory"),
  BLUESKY_APPVIEW_URL: z.string().url().default("https://public.api.bsky.app"),
  BLUESKY_WRITE_BATCH: z.coerce.number().int().min(1).max(200).default(200),
  SECRET_KEY: z.string().min(32, "must be at least 32 characters").optional(),
  DEFAULT_LANGUAGE: z
    .string()
    .transform((v) => v.trim().toLowerCase())
    .refine((v) => findLocale(v) !== undefined, `not a language the bots speak (${localeCodes().join(", ")})`)
    .default("fr"),
  ANNOUNCE_CRON: z
    .string()
    .refine((v) => cron.validate(v), "not a cron expression (five or six fields, e.g. `0 18 * * *`)")
    .default("0 18 * * *"),
  ALLOW_PRIVATE_ADDRESSES: boolean.default(false),
  LOG_LEVEL: z
    .enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"])
    .default("info"),
});

/** A language the bots speak: a locale's code (src/conversation/i18n/). */
export type Language = string;

export interface Config {
  /** PostgreSQL URL; undefined → embedded PostgreSQL under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  publicUrl: URL;
  host: string;
  port: number;
  fediverseBotUsername: string;
  bluesky: {
    service: string;
    handle: string | undefined;
    appPassword: string | undefined;
    /** The DID directory that resolves people's accounts to their PDS. */
    plcUrl: string;
    /** A public AppView: reconnection looks targets up there without the person's session. */
    appviewUrl: string;
    /** Follows per applyWrites call when reconnecting (Bluesky allows 200). */
    writeBatch: number;
  };
  /** Undefined → a key generated once and kept in `dataDir` (see store/secrets.ts). */
  secretKey: string | undefined;
  defaultLanguage: Language;
  announceCron: string;
  allowPrivateAddresses: boolean;
  logLevel: string;
}

/** Raised with one readable sentence per bad variable. */
export class ConfigError extends Error {}

/** Reads and validates configuration from an environment (default: `process.env`). */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings mean "unset" for every variable, as in most .env files.
  const cleaned = Object.fromEntries(
    Object.keys(schema.shape).flatMap((k) => {
      const v = env[k];
      return v === undefined || v === "" ? [] : [[k, v.trim()]];
    }),
  );
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new ConfigError(`Invalid configuration — ${lines.join("; ")}`);
  }
  const c = parsed.data;
  return {
    databaseUrl: c.DATABASE_URL,
    dataDir: c.DATA_DIR,
    publicUrl: new URL(c.PUBLIC_URL ?? `http://localhost:${c.PORT}`),
    host: c.HOST,
    port: c.PORT,
    fediverseBotUsername: c.FEDIVERSE_BOT_USERNAME,
    bluesky: {
      service: c.BLUESKY_SERVICE,
      handle: c.BLUESKY_HANDLE,
      appPassword: c.BLUESKY_APP_PASSWORD,
      plcUrl: c.BLUESKY_PLC_URL,
      appviewUrl: c.BLUESKY_APPVIEW_URL,
      writeBatch: c.BLUESKY_WRITE_BATCH,
    },
    secretKey: c.SECRET_KEY,
    defaultLanguage: c.DEFAULT_LANGUAGE,
    announceCron: c.ANNOUNCE_CRON,
    allowPrivateAddresses: c.ALLOW_PRIVATE_ADDRESSES,
    logLevel: c.LOG_LEVEL,
  };
}

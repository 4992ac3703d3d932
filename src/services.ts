/**
 * Opening what every command needs: configuration → database → store.
 */
import { loadConfig, type Config } from "./config.ts";
import { openDatabase, type Database } from "./store/database.ts";
import { Store } from "./store/index.ts";
import { resolveSecretKey, SecretBox } from "./store/secrets.ts";

export interface Services {
  config: Config;
  database: Database;
  store: Store;
  close(): Promise<void>;
}

export async function openServices(options: { config?: Config; migrate?: boolean; log?: (line: string) => void } = {}): Promise<Services> {
  const config = options.config ?? loadConfig();
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    migrate: options.migrate,
    log: options.log,
  });
  const secretKey = await resolveSecretKey(config.secretKey, config.dataDir);
  const store = new Store(database.sql, new SecretBox(secretKey));
  return { config, database, store, close: () => database.close() };
}

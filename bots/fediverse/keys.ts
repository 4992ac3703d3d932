/**
 * The bot actor's key pairs: RSA (HTTP Signatures, what every server
 * checks) and Ed25519 (Object Integrity Proofs), generated on first use and
 * kept in the database (private halves sealed with SECRET_KEY), so every
 * process and every restart signs with the same keys.
 */
import type { webcrypto } from "node:crypto";
import { exportJwk, generateCryptoKeyPair, importJwk } from "@fedify/fedify";
import type { Store } from "../../src/store/index.ts";
import type { StoredKeyPair } from "../../src/store/fediverse-state.ts";

const ALGORITHMS = ["RSASSA-PKCS1-v1_5", "Ed25519"] as const;

export class BotKeys {
  private readonly store: Store;
  private readonly username: string;
  private cached: Promise<webcrypto.CryptoKeyPair[]> | undefined;

  constructor(store: Store, username: string) {
    this.store = store;
    this.username = username;
  }

  /** RSA first, then Ed25519 (Fedify signs HTTP requests with the first RSA key). */
  keyPairs(): Promise<webcrypto.CryptoKeyPair[]> {
    this.cached ??= this.load().catch((error: unknown) => {
      this.cached = undefined;
      throw error;
    });
    return this.cached;
  }

  private async load(): Promise<webcrypto.CryptoKeyPair[]> {
    let stored = await this.store.fediverse.keyPairs(this.username);
    const missing = ALGORITHMS.filter((a) => !stored.some((s) => s.algorithm === a));
    if (missing.length > 0) {
      for (const algorithm of missing) {
        const pair = await generateCryptoKeyPair(algorithm);
        const record: StoredKeyPair = {
          algorithm,
          publicJwk: await exportJwk(pair.publicKey),
          privateJwk: await exportJwk(pair.privateKey),
        };
        await this.store.fediverse.saveKeyPair(this.username, record);
      }
      // Another process may have saved its own first: use what the database kept.
      stored = await this.store.fediverse.keyPairs(this.username);
    }
    const ordered = ALGORITHMS.map((a) => stored.find((s) => s.algorithm === a)!);
    return Promise.all(
      ordered.map(async (s) => ({
        publicKey: await importJwk(s.publicJwk, "public"),
        privateKey: await importJwk(s.privateJwk, "private"),
      })),
    );
  }
}

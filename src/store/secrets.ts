/**
 * Encryption at rest for authorizations (and queued messages): AES-256-GCM
 * with a key derived (HKDF-SHA256) from `SECRET_KEY`. Each ciphertext is bound to the row it
 * belongs to through the associated data, so rows cannot be swapped.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";

const FORMAT_VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SecretBox {
  readonly #key: Buffer;
  /** A key of its own for digests: one key, one use. */
  readonly #digestKey: Buffer;

  constructor(secretKey: string) {
    if (secretKey.length < 32) throw new Error("SECRET_KEY must be at least 32 characters.");
    this.#key = Buffer.from(
      hkdfSync("sha256", secretKey, "reconnexion", "authorization-v1", 32),
    );
    this.#digestKey = Buffer.from(hkdfSync("sha256", secretKey, "reconnexion", "digest-v1", 32));
  }

  /**
   * A keyed digest of `value` (HMAC-SHA256, base64url), the same each time:
   * for columns compared for equality only, which must not show the value
   * nor let it be confirmed by hashing a guess.
   */
  digest(value: string, context: string): string {
    return createHmac("sha256", this.#digestKey).update(context).update("\0").update(value).digest("base64url");
  }

  /** Encrypts `plaintext`; `context` (e.g. `identity:12`) must be given again to decrypt. */
  seal(plaintext: string, context: string): Buffer {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return Buffer.concat([Buffer.from([FORMAT_VERSION]), iv, cipher.getAuthTag(), body]);
  }

  /** Decrypts what `seal` produced; throws if it was altered or moved. */
  open(sealed: Uint8Array, context: string): string {
    const buf = Buffer.from(sealed);
    if (buf[0] !== FORMAT_VERSION) throw new Error("Unknown ciphertext format.");
    const iv = buf.subarray(1, 1 + IV_BYTES);
    const tag = buf.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", this.#key, iv);
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(tag);
    return Buffer.concat([
      decipher.update(buf.subarray(1 + IV_BYTES + TAG_BYTES)),
      decipher.final(),
    ]).toString("utf8");
  }
}

/**
 * `SECRET_KEY` when configured; otherwise a key generated once and kept in
 * `<dataDir>/secret.key` (mode 0600) so the embedded default needs no setup.
 * Several replicas must share an explicit `SECRET_KEY`.
 */
export async function resolveSecretKey(configured: string | undefined, dataDir: string): Promise<string> {
  if (configured) return configured;
  const file = path.resolve(dataDir, "secret.key");
  try {
    const existing = (await readFile(file, "utf8")).trim();
    if (existing.length >= 32) return existing;
  } catch {
    // first start: create it below
  }
  await mkdir(path.dirname(file), { recursive: true, mode: 0o755 });
  const key = randomBytes(32).toString("base64url");
  await writeFile(file, key + "\n", { mode: 0o600, flag: "w" });
  await chmod(file, 0o600);
  return key;
}

/** What `forget` and `unlink` do before identities go: end their authorizations at the servers. */
import type { Identity } from "../../store/index.ts";
import type { CommandContext } from "../context.ts";

/**
 * Revokes, at their servers, the tokens and sessions stored for these
 * identities (best effort), and says whether one was a Bluesky app password:
 * its session ends, but only its owner can delete the password at Bluesky.
 */
export async function revokeAtServers(ctx: CommandContext, personId: number, identities: readonly Identity[]): Promise<{ hadAppPassword: boolean }> {
  const kinds = await Promise.all(
    identities.filter((i) => i.platform === "bluesky").map((i) => ctx.store.authorizations.get(i.id).then((a) => a?.kind, () => undefined)),
  );
  await ctx.reconnect?.revokeAuthorizations(personId, identities.map((i) => i.id));
  return { hadAppPassword: kinds.includes("bluesky-app-password") };
}

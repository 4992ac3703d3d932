/**
 * The bot's profile and chat settings: labelled as a bot (the `bot` self-label, which clients
 * show and other bots read) with a bilingual description, and open to chat
 * messages from everyone. Written once per
 * PROFILE_VERSION, keeping whatever else the operator set (name, avatar).
 */
import type { AtpAgent } from "@atproto/api";
import type { BlueskyState } from "../../src/store/bluesky-state.ts";
import { PROFILE_DESCRIPTION, PROFILE_VERSION } from "./messages.ts";

export async function ensureBotProfile(agent: AtpAgent, did: string, state: BlueskyState, account: string): Promise<boolean> {
  if ((await state.profileVersion(account)) >= PROFILE_VERSION) return false;
  let existing: Record<string, unknown> = {};
  try {
    const got = await agent.com.atproto.repo.getRecord({ repo: did, collection: "app.bsky.actor.profile", rkey: "self" });
    existing = got.data.value as Record<string, unknown>;
  } catch {
    // no profile record yet
  }
  const labels = (existing.labels as { values?: Array<{ val: string }> } | undefined)?.values ?? [];
  await agent.com.atproto.repo.putRecord({
    repo: did,
    collection: "app.bsky.actor.profile",
    rkey: "self",
    record: {
      ...existing,
      $type: "app.bsky.actor.profile",
      displayName: (existing.displayName as string | undefined) ?? "reconnexion",
      description: PROFILE_DESCRIPTION,
      labels: {
        $type: "com.atproto.label.defs#selfLabels",
        values: [...labels.filter((l) => l.val !== "bot"), { val: "bot" }],
      },
    },
  });
  // Anyone may open a chat with the bot: it is how people talk to it.
  await agent.com.atproto.repo.putRecord({
    repo: did,
    collection: "chat.bsky.actor.declaration",
    rkey: "self",
    record: { $type: "chat.bsky.actor.declaration", allowIncoming: "all" },
  });
  await state.saveProfileVersion(account, PROFILE_VERSION);
  return true;
}

/**
 * Building a small registered world in the store for reconnection tests:
 * people with an X account and accounts elsewhere, and who followed whom on X.
 */
import type { Store, TargetPlatform } from "../../src/store/index.ts";
import type { TestDatabase } from "./database.ts";

export interface AccountSpec {
  platform: TargetPlatform;
  stableId: string;
  handle: string;
  apiBase?: string;
}

/**
 * A person as the registration platform would record them: X account `xId`
 * and `account` on Bluesky or the fediverse, all verified by the platform.
 * Returns the person id and the id of `account`'s identity.
 */
export async function registerPerson(store: Store, xId: string, account: AccountSpec, xUsername?: string): Promise<{ personId: number; identityId: number }> {
  const personId = (await store.people.create()).id;
  await store.identities.attach(personId, { platform: "x", stableId: xId, handle: xUsername ?? null, verifiedBy: "platform" });
  const identity = await store.identities.attach(personId, { ...account, verifiedBy: "platform" });
  return { personId, identityId: identity.id };
}

/** Registers the owner of `xId` with `account`, followed on X by `followerXId`; returns the new person's id. */
export async function registerFollowed(db: TestDatabase, followerXId: string, xId: string, account: AccountSpec, xUsername?: string): Promise<number> {
  const { personId } = await registerPerson(db.store, xId, account, xUsername);
  await db.sql`insert into x_follow values (${followerXId}, ${xId})`;
  return personId;
}

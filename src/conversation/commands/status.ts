/** `status` / `statut`: linked accounts, matches per platform and state, settings. */
import { findLocale } from "../i18n/index.ts";
import { tell } from "../context.ts";
import type { Command } from "../registry.ts";

export const status: Command = {
  id: "status",
  needsPerson: true,
  async run(ctx) {
    const { person, identities } = ctx.person!;
    const [counts, upload] = await Promise.all([ctx.store.matches.counts(person.id), ctx.store.uploadedArchives.get(person.id)]);
    for (const i of identities) if (i.handle) ctx.secret(i.handle);
    if (upload?.xUsername) ctx.secret(upload.xUsername);
    const jobs = [];
    for (const job of await ctx.store.reconnectJobs.recentFor(person.id)) {
      // A wait is the network's limits, or a pause after the server failed.
      const state = job.state === "waiting" && job.reason !== "rate_limited" ? "retrying" : job.state;
      jobs.push(ctx.locale.r.jobLine(job.platform, state, await ctx.store.reconnectJobs.counts(job.id), job.waitUntil));
    }
    return [
      tell(
        [ctx.locale.m.status({
          identities: identities.map((i) => ({ platform: i.platform, handle: i.handle, verifiedBy: i.verifiedBy })),
          upload: upload ? { xUsername: upload.xUsername, followings: upload.followings } : null,
          counts,
          language: person.language,
          languageName: findLocale(person.language)?.name ?? null,
          notify: person.notify,
          autoReconnect: person.autoReconnect,
          announceMe: person.announceMe,
        }), ...jobs].join("\n"),
      ),
    ];
  },
};

/** Announcements: what the bots write first, on a schedule. */
export { digestText, sendArrivalDigests, type DigestOptions, type DigestRun } from "./digests.ts";
export { scheduleAnnouncements } from "./schedule.ts";

/** Announcements: what the bots write first, on a schedule. */
export { digestText, sendArrivalDigests, type DigestOptions, type DigestRun } from "./digests.ts";
export {
  ForeignPostError,
  postPublicAnnouncements,
  type AnnouncementPoster,
  type NamedArrival,
  type PublicAnnouncementOptions,
  type PublicAnnouncementRun,
} from "./public.ts";
export { announce, scheduleAnnouncements, type AnnouncementOptions } from "./schedule.ts";

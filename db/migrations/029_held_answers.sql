-- Answers kept for a retry (bluesky_event.replies, fediverse_inbound.replies)
-- are sealed with SECRET_KEY from now on (a base64 string in the jsonb
-- column, bound to the event or note; rows written before are still read):
-- they may hold link codes, one-time links, a person's matches. A person
-- forgotten takes theirs along: a Bluesky event being answered records who
-- sent it, as a keyed digest of their DID (cleared once it is finished), and
-- the fediverse's answers are found by the sender's actor.
alter table bluesky_event add column sender_digest text;
create index bluesky_event_sender on bluesky_event (sender_digest) where sender_digest is not null;
create index fediverse_inbound_held on fediverse_inbound (actor_uri) where replies is not null;

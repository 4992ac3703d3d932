-- A claim on a fediverse note has an owner, as Bluesky events do (025): the
-- worker that took it writes a token of its own, renews claimed_at while it
-- works (heartbeat), and saves replies or marks the note answered only while
-- the token is still its own. A worker whose claim was taken over (it had
-- stopped renewing) finds out at its next step and stops, instead of
-- answering a second time.
alter table fediverse_inbound add column claim_token text;

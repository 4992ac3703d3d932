-- A claim on a Bluesky event has an owner: the worker that took it writes a
-- token of its own, renews claimed_at while it works (heartbeat), and records
-- progress or finishes the event only while the token is still its own. A
-- worker whose claim was taken over (it had stopped renewing) finds out at
-- its next step and stops, instead of sending what the new holder sends.
alter table bluesky_event add column claim_token text;

-- Arrival digests (src/announce): each match is told to its person at most
-- once. Matches already in the store count as told at this migration (their
-- people have seen them through `status` and `list`): a fast default, no
-- table rewrite. New matches start untold.
alter table match add column notified_at timestamptz default now();
alter table match alter column notified_at drop default;
create index match_untold on match (person_id) where notified_at is null;

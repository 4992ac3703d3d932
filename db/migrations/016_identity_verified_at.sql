-- When an identity became verified for its person: the moment it counts for
-- arrivals (src/announce). An X account first known from someone's archive
-- and later verified by the registration platform (or taken over from the
-- archive by its owner) arrives then, not when the archive was read.
alter table identity add column verified_at timestamptz;
update identity set verified_at = created_at;
alter table identity alter column verified_at set default now(), alter column verified_at set not null;

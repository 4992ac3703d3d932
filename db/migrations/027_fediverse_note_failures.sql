-- A message whose handling keeps failing for a reason of its own (a bug, a
-- value the database refuses) is tried a few times, then its sender is told
-- it could not be answered and it is closed: `failures` counts those tries
-- (each releases the note's claim at once, for Fedify's next retry).
alter table fediverse_inbound add column failures integer not null default 0;

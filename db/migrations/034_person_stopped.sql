-- When the person last said `stop` (the bot never writes first again), unless
-- they turned something back on since. Merging two people keeps it, so that
-- linking another account does not undo a `stop` (src/store/people.ts merge).
alter table person add column stopped_at timestamptz;

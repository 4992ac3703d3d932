-- Reading matches without touching the heap (measured in bench/matching.ts
-- and bench/fanout.ts at 47M edges):
-- - a person's page of matches comes straight from this index, newest first,
--   and counts per state are index-only;
-- - an arrival's followers come from its matches, index-only.
create index match_person_page on match (person_id, platform, created_at desc, target_person_id) include (state);
drop index match_target;
create index match_target on match (target_person_id, person_id);

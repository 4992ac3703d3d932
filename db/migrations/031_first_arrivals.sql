-- Arrivals are counted once (src/store/arrivals.ts, src/announce): a person
-- arrives on a platform when a verified X identity and a verified identity
-- there first belong to them, and that moment is kept here, set once. An
-- account unlinked and linked again is a new identity row verified anew; it
-- does not make its person arrive again. Forgetting a person deletes their
-- rows (someone who registers again is a new person, and arrives anew).
create table arrival (
  person_id integer not null references person (id) on delete cascade,
  platform text not null check (platform in ('bluesky', 'fediverse')),
  arrived_at timestamptz not null,
  primary key (person_id, platform)
);
create index arrival_window on arrival (platform, arrived_at);

-- Which arrivals each person was told in a digest (person_id told that
-- target_person_id arrived on platform). A match is deleted when the account
-- it rests on is unlinked and made again when it is linked again; this keeps
-- the telling. told_at is the claim's stamp, so a claim given back takes its
-- rows back too.
create table arrival_told (
  person_id integer not null references person (id) on delete cascade,
  platform text not null check (platform in ('bluesky', 'fediverse')),
  target_person_id integer not null references person (id) on delete cascade,
  told_at timestamptz not null,
  primary key (person_id, platform, target_person_id)
);
create index arrival_told_target on arrival_told (target_person_id);

-- Recorded as identities are written, whoever writes them (a registration, a
-- link, a merge, a registry import, a verification of an archive's claim):
-- after each statement, the people it gave a verified identity get the
-- arrivals they do not have yet, at the later of their first verified X
-- identity and their first verified identity there (`verified_at`).
create function arrival_record() returns trigger language plpgsql as $$
begin
  insert into arrival (person_id, platform, arrived_at)
  select t.person_id, t.platform, greatest(min(x.verified_at), min(t.verified_at))
  from identity t
  join identity x on x.person_id = t.person_id and x.platform = 'x' and x.verified_by <> 'archive'
  where t.person_id in (select w.person_id from written w where w.verified_by <> 'archive')
    and t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
  group by t.person_id, t.platform
  on conflict do nothing;
  return null;
end;
$$;

create trigger identity_insert_arrival after insert on identity
  referencing new table as written for each statement execute function arrival_record();
create trigger identity_update_arrival after update on identity
  referencing new table as written for each statement execute function arrival_record();

-- The people here now arrived when their identities say.
insert into arrival (person_id, platform, arrived_at)
select t.person_id, t.platform, greatest(min(x.verified_at), min(t.verified_at))
from identity t
join identity x on x.person_id = t.person_id and x.platform = 'x' and x.verified_by <> 'archive'
where t.platform in ('bluesky', 'fediverse') and t.verified_by <> 'archive'
group by t.person_id, t.platform;

-- Arrivals already told: the told matches whose target arrived after their
-- person joined (the others were never news).
insert into arrival_told (person_id, platform, target_person_id, told_at)
select m.person_id, m.platform, m.target_person_id, m.notified_at
from match m
join arrival a on a.person_id = m.target_person_id and a.platform = m.platform
join (
  select p.id, least(
    (select min(x.created_at) from identity x where x.person_id = p.id and x.platform = 'x'),
    (select u.uploaded_at from uploaded_archive u where u.person_id = p.id)) as since
  from person p) f on f.id = m.person_id
where m.notified_at is not null and a.arrived_at > f.since;

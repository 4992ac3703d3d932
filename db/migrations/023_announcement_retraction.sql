-- Forgetting a person takes back the public posts that named them: each post
-- records who it named, and forgetting one of them queues the post here; the
-- next announcement run deletes it on its platform (a Delete to the fediverse
-- bot's followers, the record deleted from the Bluesky bot's repository).
-- A run claims a retraction for a while (claimed_at) and removes it once done,
-- so a replica dying in between leaves it for the next run.
alter table announcement add column named_people integer[] not null default '{}';
create index announcement_named_people on announcement using gin (named_people);

create table announcement_retraction (
  platform text not null check (platform in ('bluesky', 'fediverse')),
  post_uri text not null,
  requested_at timestamptz not null default now(),
  claimed_at timestamptz,
  primary key (platform, post_uri)
);

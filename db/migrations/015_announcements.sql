-- Public announcements (src/announce/public.ts): one row per platform and
-- window of time whose arrivals were (or are being) announced. The primary
-- key is the claim: two replicas opening the same window insert the same
-- (platform, since), and only one of them posts. A window whose post failed
-- is deleted, so the next one starts where the last posted one ended. A
-- platform's first window starts at -infinity and is never announced: it
-- marks where announcing began.
create table announcement (
  platform text not null check (platform in ('bluesky', 'fediverse')),
  since timestamptz not null,
  until timestamptz not null check (until >= since),
  arrivals integer,
  named integer,
  post_uri text,
  posted_at timestamptz,
  primary key (platform, since)
);

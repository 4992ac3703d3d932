-- The fediverse bot's public posts (announcements), kept so that they can be
-- served at their ids and listed in its outbox: a server that sees a boost of
-- one, or a reply to it, fetches it from here. Direct messages are never kept
-- here, and never served.
create table fediverse_public_note (
  id uuid primary key,
  -- the note's HTML, as posted
  content text not null,
  -- the people it mentions: [{ "href": actor URI, "name": "@user@host" }]
  mentions jsonb not null default '[]',
  published timestamptz not null default now()
);
create index fediverse_public_note_published on fediverse_public_note (published desc, id desc);

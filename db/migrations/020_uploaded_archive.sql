-- X archives that people upload themselves (the `archive` command's page),
-- kept apart from the shared graph. Anyone can make a file that names an X
-- account, so an upload claims nothing: its follows serve its uploader's own
-- matching, and nothing the store learns about that X account from other
-- data (the registry, an operator's imports) ever reaches the uploader.
create table uploaded_archive (
  person_id integer primary key references person (id) on delete cascade,
  -- the account the archive's data/account.js names (unverified)
  x_id bigint not null check (x_id > 0),
  x_username text,
  uploaded_at timestamptz not null default now()
);

-- Whom the uploaded archive says its uploader followed on X.
create table uploaded_follow (
  person_id integer not null references uploaded_archive (person_id) on delete cascade,
  followed bigint not null check (followed > 0),
  primary key (person_id, followed)
);
-- An arrival's fan-out: who uploaded a follow of this X account.
create index uploaded_follow_followed on uploaded_follow (followed, person_id);

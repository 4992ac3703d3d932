-- Write budgets, shared by every worker that writes for an account (Bluesky:
-- 5,000 points an hour and 35,000 a day per account, a create costing 3).
-- write_budget: one row per account, locked (select … for update) by each
-- reservation so concurrent reservers never overspend between them; it also
-- holds the last limit the server itself reported (ratelimit-* headers, a
-- 429), which stands until its reset.
create table write_budget (
  account text primary key,
  server_remaining integer,
  server_reset_at timestamptz,
  updated_at timestamptz not null default now()
);

-- The points reserved, when: a sliding-window ledger (see
-- src/store/write-budget.ts). Rows older than the longest window are pruned
-- by the reservations themselves.
create table write_budget_use (
  id bigserial primary key,
  account text not null references write_budget (account) on delete cascade,
  at timestamptz not null,
  points integer not null check (points >= 0)
);
create index write_budget_use_account_at on write_budget_use (account, at);

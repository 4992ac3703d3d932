-- When the person last granted this authorization (on the connect page).
-- Renewals by the service itself (a refreshed session) keep it: a run that
-- finds its authorization dead removes it only if no new grant came since.
alter table account_authorization add column granted_at timestamptz not null default now();

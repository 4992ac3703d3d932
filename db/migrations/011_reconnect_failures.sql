-- Runs of a job that ended in an unexpected error, in a row: past a limit
-- the job gives up on its remaining targets (each recorded as failed) and
-- reports, instead of retrying forever. Reset by a run that ends normally.
alter table reconnect_job add column failures integer not null default 0;

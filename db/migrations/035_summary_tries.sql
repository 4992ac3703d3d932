-- A job's final summary that could not be delivered (the bot not logged in
-- yet after a restart, a server that did not answer) is claimed again by the
-- periodic rescan; this counts the tries, so a summary nobody can receive
-- is not tried forever.
alter table reconnect_job add column summary_tries integer not null default 0;

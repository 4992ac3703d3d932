-- Finished jobs whose summary was never claimed (their process died in
-- between): the periodic rescan sends those summaries.
create index reconnect_job_unreported on reconnect_job (finished_at) where state = 'done' and summary_sent_at is null;

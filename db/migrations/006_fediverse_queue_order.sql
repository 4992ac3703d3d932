-- Messages sharing an ordering key (Fedify's `orderingKey`: one recipient's
-- notes, say) are handled one at a time, in the order they were queued.
alter table fediverse_queue add column ordering_key text;
create index fediverse_queue_ordering on fediverse_queue (queue, ordering_key, id) where ordering_key is not null;

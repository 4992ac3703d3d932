-- A public post of the fediverse bot that named someone since forgotten is
-- withdrawn at once (no longer served) but kept until its Delete has gone
-- out: the Delete goes to the people it mentioned as well as to the
-- followers, and their addresses are in the row. The row goes with it.
alter table fediverse_public_note add column withdrawn_at timestamptz;

-- The language a person last wrote to the bots in (detected from their
-- messages), for what the bots send on their own — reports, digests, pages
-- — when the person has not chosen one (person.language).
alter table person add column written_language text check (written_language ~ '^[a-z]{2}$');

-- One-time links for uploading an X archive (the `archive` command).
alter table web_link drop constraint web_link_purpose_check;
alter table web_link add constraint web_link_purpose_check check (purpose in ('connect', 'export', 'archive'));

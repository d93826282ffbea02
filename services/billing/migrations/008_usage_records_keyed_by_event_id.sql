-- Usage records keyed by their event id alone (issue 4, performance). A usage
-- record had a random uuid primary key besides its unique, non-null event_id,
-- which is what every reader and the exactly-once check use; nothing referred to
-- the uuid. Each record therefore paid two random-position index insertions for
-- one key. The uuid and its index go; the event id's existing unique index (no
-- rebuild) stays the key and becomes the replica identity.
ALTER TABLE usage_records DROP CONSTRAINT usage_records_pkey;
ALTER TABLE usage_records DROP COLUMN id;
ALTER TABLE usage_records REPLICA IDENTITY USING INDEX usage_records_event_id_key;

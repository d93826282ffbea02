-- Balanced-ledger checks, set-based (issue 4, performance). Before, every
-- inserted entry and every inserted transaction queued a deferred row trigger
-- that summed its transaction's entries at commit: a usage batch over 2,000
-- tenants (2,000 transactions, 4,000 entries) ran 6,000 of them, about 30 µs of
-- Postgres time per usage event. Now:
--   * an INSERT into ledger_entries is checked once, at the end of the
--     statement, for every transaction it touched: at least two entries that sum
--     to zero. A transaction's entries are therefore written in one statement
--     (Ledger.post and the batch settlement do), and entries can never be added
--     to a booked transaction later;
--   * a ledger transaction is checked at commit for having entries at all
--     (anything with entries passed the statement check).
-- Same error code and message prefix as before ('... is unbalanced').
DROP TRIGGER ledger_entries_balanced ON ledger_entries;

CREATE FUNCTION ledger_assert_entries_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  unbalanced record;
BEGIN
  SELECT n.transaction_id, s.total, s.entries INTO unbalanced
    FROM (SELECT DISTINCT transaction_id FROM new_entries) n
    CROSS JOIN LATERAL (SELECT coalesce(sum(e.amount_micros), 0) AS total, count(*) AS entries
                          FROM billing.ledger_entries e WHERE e.transaction_id = n.transaction_id) s
   WHERE s.entries < 2 OR s.total <> 0
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger transaction % is unbalanced: % entries summing to %', unbalanced.transaction_id, unbalanced.entries, unbalanced.total
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS new_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_assert_entries_balanced();
CREATE OR REPLACE FUNCTION ledger_assert_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM billing.ledger_entries WHERE transaction_id = NEW.id) THEN
    RAISE EXCEPTION 'ledger transaction % is unbalanced: it has no entries', NEW.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END
$$;

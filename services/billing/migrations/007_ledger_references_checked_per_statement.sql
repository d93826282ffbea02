-- Ledger references checked once per statement (issue 4, performance). A usage
-- chunk over 2,000 tenants writes 2,000 transactions and 4,000 entries in one
-- statement each. The entries' two foreign keys ran 8,000 row-level checks
-- (each an index probe that also share-locks the referenced row): about 28 ms of
-- the 73 ms the entries' INSERT took, measured with EXPLAIN ANALYZE on a
-- database of 100,000 tenants. The balance guard on accounts ran a plpgsql call
-- for each of the 2,000 balance updates.
--
-- Now:
--   * the statement-level check of ledger_entries (migration 004) also checks,
--     set-based, that every new entry's transaction exists with the entry's
--     tenant and that its account exists. Neither can disappear later:
--     transactions are append-only, and accounts can no longer be deleted or
--     change id (trigger below), which is all the foreign keys' locks were for;
--   * UNIQUE (id, tenant_id) on ledger_transactions existed only as the target
--     of the composite foreign key, and (tenant_id, created_at) had no reader
--     (every read reaches transactions by id from an account's entries): both
--     dropped, two index insertions less per transaction;
--   * the guard on accounts.balance_micros is skipped by a WHEN clause when the
--     update comes from the ledger's own trigger, instead of being called to
--     find that out.
-- Same error code (foreign_key_violation) and a message naming the entry.

CREATE OR REPLACE FUNCTION ledger_assert_entries_balanced() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unbalanced record;
  dangling record;
BEGIN
  -- SECURITY DEFINER: like the foreign keys it replaces, the check sees every
  -- transaction and account, whatever tenant scope the writer has set.
  -- Each distinct reference is probed through its index (a LATERAL aggregate runs
  -- once per outer row); a plain anti-join is planned as a hash join that reads
  -- both tables whole, since the planner knows nothing of the transition table.
  SELECT n.transaction_id, n.tenant_id INTO dangling
    FROM (SELECT DISTINCT transaction_id, tenant_id FROM new_entries) n
    CROSS JOIN LATERAL (SELECT count(*) AS found FROM billing.ledger_transactions t
                         WHERE t.id = n.transaction_id AND t.tenant_id = n.tenant_id) c
   WHERE c.found = 0
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger entry refers to transaction % of tenant %, which does not exist', dangling.transaction_id, dangling.tenant_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  SELECT n.account_id INTO dangling
    FROM (SELECT DISTINCT account_id FROM new_entries) n
    CROSS JOIN LATERAL (SELECT count(*) AS found FROM billing.accounts a WHERE a.id = n.account_id) c
   WHERE c.found = 0
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'ledger entry refers to account %, which does not exist', dangling.account_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;

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

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_account_id_fkey;
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_transaction_id_tenant_id_fkey;
ALTER TABLE ledger_transactions DROP CONSTRAINT ledger_transactions_id_tenant_id_key;
DROP INDEX ledger_transactions_tenant_created;

CREATE FUNCTION accounts_are_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'billing.accounts rows are permanent: ledger entries refer to them'
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER accounts_are_permanent BEFORE DELETE ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_are_permanent();
CREATE TRIGGER accounts_id_is_permanent BEFORE UPDATE OF id ON accounts
  FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id) EXECUTE FUNCTION accounts_are_permanent();
CREATE TRIGGER accounts_table_is_permanent BEFORE TRUNCATE ON accounts
  FOR EACH STATEMENT EXECUTE FUNCTION accounts_are_permanent();

-- pg_trigger_depth() is 0 in a WHEN clause for a statement a client sent, and 1
-- for the ledger trigger's own UPDATE; the function itself is unchanged.
DROP TRIGGER accounts_balance_is_derived ON accounts;
CREATE TRIGGER accounts_balance_is_derived_on_insert BEFORE INSERT ON accounts
  FOR EACH ROW EXECUTE FUNCTION accounts_balance_is_derived();
CREATE TRIGGER accounts_balance_is_derived BEFORE UPDATE OF balance_micros ON accounts
  FOR EACH ROW WHEN (pg_trigger_depth() < 1 AND NEW.balance_micros IS DISTINCT FROM OLD.balance_micros)
  EXECUTE FUNCTION accounts_balance_is_derived();

-- Open holds per user and per API key of tenants with budgets (issue 4,
-- performance). A budget check summed the tenant's held reservations, filtered
-- by the request's user and key, under the account lock, so for tenants with
-- budgets Reserve still grew with the requests in flight (migration 010 removed
-- that for everyone else). budget_subject_holds is kept by the database from
-- the reservations, in the same transaction as the change of the reservation,
-- like accounts.held_micros:
--   - only for tenants whose account has has_budgets: every other tenant's
--     Reserve pays nothing for it;
--   - when has_budgets turns on, the tenant's rows are counted afresh from its
--     open holds; when it turns off they are dropped. The flag changes under the
--     account lock that every writer of holds takes first, so no hold can change
--     between the count and the triggers taking over.
-- A client statement cannot write the table, and no row can go negative.
--
-- Existing holds are counted under a SHARE lock on reservations, so no hold
-- taken by a replica still on the old code can slip between the backfill and
-- the triggers.
LOCK TABLE reservations IN SHARE MODE;

CREATE TABLE budget_subject_holds (
  tenant_id   text NOT NULL,
  scope       text NOT NULL CHECK (scope IN ('user', 'api_key')),
  subject     text NOT NULL,
  held_micros bigint NOT NULL CHECK (held_micros >= 0),
  PRIMARY KEY (tenant_id, scope, subject)
);
ALTER TABLE budget_subject_holds ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON budget_subject_holds USING (tenant_id = current_setting('app.tenant_id', true));

-- The tenant's rows, counted from its open holds.
CREATE FUNCTION count_budget_subject_holds(p_tenant text) RETURNS void
  LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  DELETE FROM billing.budget_subject_holds WHERE tenant_id = p_tenant;
  INSERT INTO billing.budget_subject_holds (tenant_id, scope, subject, held_micros)
  SELECT p_tenant, s.scope, s.subject, sum(s.amount)
    FROM billing.reservations r
   CROSS JOIN LATERAL (VALUES ('user', r.user_id, r.amount_micros), ('api_key', r.api_key_id, r.amount_micros)) AS s(scope, subject, amount)
   WHERE r.tenant_id = p_tenant AND r.status = 'held'
   GROUP BY s.scope, s.subject
  HAVING sum(s.amount) <> 0;
$$;

SELECT count_budget_subject_holds(tenant_id) FROM accounts WHERE kind = 'tenant' AND has_budgets;

CREATE FUNCTION accounts_recount_budget_holds() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW.has_budgets THEN
    PERFORM billing.count_budget_subject_holds(NEW.tenant_id);
  ELSE
    DELETE FROM billing.budget_subject_holds WHERE tenant_id = NEW.tenant_id;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER accounts_recount_budget_holds AFTER UPDATE OF has_budgets ON accounts
  FOR EACH ROW WHEN (NEW.kind = 'tenant' AND NEW.has_budgets IS DISTINCT FROM OLD.has_budgets)
  EXECUTE FUNCTION accounts_recount_budget_holds();

-- Adds changes of open holds per (tenant, scope, subject). A new subject can
-- only appear with a positive change; a negative change needs the row.
CREATE FUNCTION apply_subject_hold_deltas(p_tenants text[], p_scopes text[], p_subjects text[], p_deltas bigint[]) RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  updated integer;
  decreases integer;
BEGIN
  IF p_tenants IS NULL THEN
    RETURN;
  END IF;
  INSERT INTO billing.budget_subject_holds AS h (tenant_id, scope, subject, held_micros)
  SELECT * FROM unnest(p_tenants, p_scopes, p_subjects, p_deltas) AS d(tenant_id, scope, subject, delta) WHERE d.delta > 0
  ON CONFLICT (tenant_id, scope, subject) DO UPDATE SET held_micros = h.held_micros + EXCLUDED.held_micros;
  UPDATE billing.budget_subject_holds h SET held_micros = h.held_micros + d.delta
    FROM unnest(p_tenants, p_scopes, p_subjects, p_deltas) AS d(tenant_id, scope, subject, delta)
   WHERE d.delta < 0 AND h.tenant_id = d.tenant_id AND h.scope = d.scope AND h.subject = d.subject;
  GET DIAGNOSTICS updated = ROW_COUNT;
  SELECT count(*) INTO decreases FROM unnest(p_deltas) AS d(delta) WHERE d.delta < 0;
  IF updated <> decreases THEN
    RAISE EXCEPTION 'open holds per user and key are out of step with the reservations (% of % decreases found a row)', updated, decreases
      USING ERRCODE = 'data_exception';
  END IF;
END
$$;

-- Now answers which of the tenants have budgets, so the statement triggers
-- count per user and key only for those.
DROP FUNCTION apply_hold_deltas(text[], bigint[]);
CREATE FUNCTION apply_hold_deltas(p_tenants text[], p_deltas bigint[]) RETURNS text[]
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  updated integer;
  budgeted text[];
BEGIN
  IF p_tenants IS NULL THEN
    RETURN NULL;
  END IF;
  -- SECURITY DEFINER: the reservations already passed their own row-level
  -- checks; the holds of exactly their tenants follow, whatever scope is set.
  WITH changed AS (
    UPDATE billing.accounts a
       SET held_micros = a.held_micros + d.delta
      FROM unnest(p_tenants, p_deltas) AS d(tenant_id, delta)
     WHERE a.tenant_id = d.tenant_id AND a.kind = 'tenant'
    RETURNING a.tenant_id, a.has_budgets)
  SELECT count(*), array_agg(tenant_id) FILTER (WHERE has_budgets) INTO updated, budgeted FROM changed;
  IF updated <> cardinality(p_tenants) THEN
    RAISE EXCEPTION 'a held reservation needs its tenant''s account (% of % tenants have one)', updated, cardinality(p_tenants)
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  RETURN budgeted;
END
$$;

CREATE OR REPLACE FUNCTION reservations_apply_inserted_hold() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
  budgeted boolean;
BEGIN
  UPDATE billing.accounts SET held_micros = held_micros + NEW.amount_micros WHERE tenant_id = NEW.tenant_id AND kind = 'tenant'
    RETURNING has_budgets INTO budgeted;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'a held reservation needs its tenant''s account (tenant %)', NEW.tenant_id
      USING ERRCODE = 'foreign_key_violation';
  END IF;
  IF budgeted THEN
    INSERT INTO billing.budget_subject_holds AS h (tenant_id, scope, subject, held_micros)
    VALUES (NEW.tenant_id, 'api_key', NEW.api_key_id, NEW.amount_micros), (NEW.tenant_id, 'user', NEW.user_id, NEW.amount_micros)
    ON CONFLICT (tenant_id, scope, subject) DO UPDATE SET held_micros = h.held_micros + EXCLUDED.held_micros;
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION reservations_apply_updated_holds() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tenants text[];
  deltas bigint[];
  budgeted text[];
  s_tenants text[];
  s_scopes text[];
  s_subjects text[];
  s_deltas bigint[];
BEGIN
  SELECT array_agg(tenant_id ORDER BY tenant_id), array_agg(delta ORDER BY tenant_id) INTO tenants, deltas
    FROM (SELECT tenant_id, sum(amount) AS delta
            FROM (SELECT tenant_id, amount_micros AS amount FROM new_rows WHERE status = 'held'
                  UNION ALL
                  SELECT tenant_id, -amount_micros FROM old_rows WHERE status = 'held') changes
           GROUP BY tenant_id) d
   WHERE delta <> 0;
  budgeted := billing.apply_hold_deltas(tenants, deltas);
  IF budgeted IS NOT NULL THEN
    SELECT array_agg(tenant_id ORDER BY tenant_id, scope, subject), array_agg(scope ORDER BY tenant_id, scope, subject),
           array_agg(subject ORDER BY tenant_id, scope, subject), array_agg(delta ORDER BY tenant_id, scope, subject)
      INTO s_tenants, s_scopes, s_subjects, s_deltas
      FROM (SELECT c.tenant_id, s.scope, s.subject, sum(c.amount) AS delta
              FROM (SELECT tenant_id, user_id, api_key_id, amount_micros AS amount FROM new_rows WHERE status = 'held' AND tenant_id = ANY (budgeted)
                    UNION ALL
                    SELECT tenant_id, user_id, api_key_id, -amount_micros FROM old_rows WHERE status = 'held' AND tenant_id = ANY (budgeted)) c
             CROSS JOIN LATERAL (VALUES ('user', c.user_id), ('api_key', c.api_key_id)) AS s(scope, subject)
             GROUP BY c.tenant_id, s.scope, s.subject) d
     WHERE delta <> 0;
    PERFORM billing.apply_subject_hold_deltas(s_tenants, s_scopes, s_subjects, s_deltas);
  END IF;
  RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION reservations_apply_deleted_holds() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tenants text[];
  deltas bigint[];
  budgeted text[];
  s_tenants text[];
  s_scopes text[];
  s_subjects text[];
  s_deltas bigint[];
BEGIN
  SELECT array_agg(tenant_id ORDER BY tenant_id), array_agg(delta ORDER BY tenant_id) INTO tenants, deltas
    FROM (SELECT tenant_id, -sum(amount_micros) AS delta FROM old_rows WHERE status = 'held' GROUP BY tenant_id) d
   WHERE delta <> 0;
  budgeted := billing.apply_hold_deltas(tenants, deltas);
  IF budgeted IS NOT NULL THEN
    SELECT array_agg(tenant_id ORDER BY tenant_id, scope, subject), array_agg(scope ORDER BY tenant_id, scope, subject),
           array_agg(subject ORDER BY tenant_id, scope, subject), array_agg(delta ORDER BY tenant_id, scope, subject)
      INTO s_tenants, s_scopes, s_subjects, s_deltas
      FROM (SELECT o.tenant_id, s.scope, s.subject, -sum(o.amount_micros) AS delta
              FROM old_rows o
             CROSS JOIN LATERAL (VALUES ('user', o.user_id), ('api_key', o.api_key_id)) AS s(scope, subject)
             WHERE o.status = 'held' AND o.tenant_id = ANY (budgeted)
             GROUP BY o.tenant_id, s.scope, s.subject) d
     WHERE delta <> 0;
    PERFORM billing.apply_subject_hold_deltas(s_tenants, s_scopes, s_subjects, s_deltas);
  END IF;
  RETURN NULL;
END
$$;

-- Only the triggers above (depth 1 or more) write the table.
CREATE FUNCTION budget_subject_holds_are_derived() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'budget_subject_holds is derived from reservations: take, settle or release a reservation instead'
    USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER budget_subject_holds_are_derived BEFORE INSERT OR UPDATE OR DELETE ON budget_subject_holds
  FOR EACH ROW WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION budget_subject_holds_are_derived();
CREATE TRIGGER budget_subject_holds_not_truncated BEFORE TRUNCATE ON budget_subject_holds
  FOR EACH STATEMENT EXECUTE FUNCTION budget_subject_holds_are_derived();

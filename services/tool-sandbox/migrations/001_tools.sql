CREATE TABLE tools (
  id text PRIMARY KEY,
  tenant_id text,
  name text NOT NULL,
  json_schema jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tool_audit (
  id bigserial PRIMARY KEY,
  tenant_id text NOT NULL,
  tool_id text NOT NULL,
  outcome text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tool_audit ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tool_audit USING (tenant_id = current_setting('app.tenant_id', true));

CREATE TABLE conversations (
  id uuid PRIMARY KEY,
  tenant_id text NOT NULL,
  user_id text NOT NULL,
  title text,
  model text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conversations_owner_idx ON conversations (tenant_id, user_id, updated_at DESC);

CREATE TABLE messages (
  seq bigserial PRIMARY KEY,
  id uuid NOT NULL UNIQUE,
  conversation_id uuid NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
  tenant_id text NOT NULL,
  role text NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
  content text NOT NULL,
  -- complete | incomplete (stream aborted or failed after tokens were produced)
  status text NOT NULL DEFAULT 'complete',
  request_id text,
  input_tokens integer,
  output_tokens integer,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, seq);

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversations USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY tenant_isolation ON messages USING (tenant_id = current_setting('app.tenant_id', true));

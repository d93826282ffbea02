-- The writes of a chat turn in one round trip each (issue 3, performance). Same semantics as the
-- transactions they replace in ConversationStore (BEGIN; set the tenant scope; write; COMMIT):
-- each function sets the tenant scope for its own statement and writes; called as one autocommit
-- statement, so the scope ends with it. SECURITY INVOKER: row-level security applies as for the
-- service's own queries.
CREATE FUNCTION create_conversation(p_id uuid, p_tenant text, p_user text, p_model text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant, true);
  INSERT INTO orchestrator.conversations (id, tenant_id, user_id, model) VALUES (p_id, p_tenant, p_user, p_model);
END
$$;

-- The turn's messages in their order (seq follows the array order), then the answer, then the
-- conversation's updated_at.
CREATE FUNCTION append_turn(
  p_conversation uuid, p_tenant text, p_request text, p_roles text[], p_contents text[],
  p_answer_id uuid, p_answer text, p_status text, p_input integer, p_output integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM set_config('app.tenant_id', p_tenant, true);
  INSERT INTO orchestrator.messages (id, conversation_id, tenant_id, role, content, request_id)
    SELECT gen_random_uuid(), p_conversation, p_tenant, m.role, m.content, p_request
      FROM unnest(p_roles, p_contents) WITH ORDINALITY AS m(role, content, ord)
     ORDER BY m.ord;
  INSERT INTO orchestrator.messages (id, conversation_id, tenant_id, role, content, status, request_id, input_tokens, output_tokens)
    VALUES (p_answer_id, p_conversation, p_tenant, 'assistant', p_answer, p_status, p_request, p_input, p_output);
  UPDATE orchestrator.conversations SET updated_at = now() WHERE id = p_conversation;
END
$$;

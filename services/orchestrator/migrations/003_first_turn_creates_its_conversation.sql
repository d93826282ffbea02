-- A conversation started by a turn is written together with that turn, in the same round trip
-- (issue 3, performance): the orchestrator no longer inserts it before generating. A conversation
-- therefore exists once its first turn is stored; a first turn that failed before any token stores
-- nothing, as append_turn already did for its messages.
CREATE FUNCTION append_first_turn(
  p_conversation uuid, p_tenant text, p_user text, p_model text, p_request text, p_roles text[], p_contents text[],
  p_answer_id uuid, p_answer text, p_status text, p_input integer, p_output integer) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM orchestrator.create_conversation(p_conversation, p_tenant, p_user, p_model);
  PERFORM orchestrator.append_turn(p_conversation, p_tenant, p_request, p_roles, p_contents, p_answer_id, p_answer, p_status, p_input, p_output);
END
$$;

-- Audit trail (CONTRACT §9): append-only, hash-chained, partitioned by month.
--
-- Layout. `audit_events` is range-partitioned on `occurred_at`, one partition per
-- calendar month (`audit_events_y2025m01`, ...) plus `audit_events_default` for
-- anything outside the created months (events replayed from a very old spool,
-- clock skew). Retention is DDL, not DELETE: the table owner runs
--     ALTER TABLE audit_events DETACH PARTITION audit_events_y2024m01;
--     DROP TABLE audit_events_y2024m01;
-- which costs the same for 10 rows or 100 million and fires no row trigger.
-- `audit_ensure_partitions(from, months)` creates upcoming months ahead of time;
-- the writer calls it at start and every few hours, this migration calls it once.
--
-- Primary key (id, occurred_at): a partitioned table's unique keys must contain
-- the partition key. Every event carries a writer-generated UUID and its
-- occurred_at is fixed at emission and stored in the spool, so a replay after a
-- partial write hits the same key and `ON CONFLICT DO NOTHING` skips it.
--
-- Hash chain: one chain per writer (chain_id = the writer's UUID, seq = 1, 2, ...);
-- hash = sha256(prev_hash || canonical encoding), see auth_service/audit/chain.py.
--
-- Append-only, two layers:
--   * a trigger refuses UPDATE and DELETE (every partition) and TRUNCATE, for
--     every role including the owner; dropping/detaching a partition is DDL and
--     is the only way data leaves the table;
--   * the runtime role gets only SELECT and INSERT (and EXECUTE on the partition
--     function): see runtime_grants.sql, applied by `auth-service migrate` after
--     the versioned files (roles are cluster-wide and creating one needs
--     CREATEROLE, which a plain database owner does not hold).

CREATE TABLE audit_events (
    id           uuid        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    type         text        NOT NULL,
    outcome      text        NOT NULL,
    actor_sub    text,
    subject_sub  text,
    client_id    text,
    source_ip    text,
    user_agent   text,
    request_id   text,
    trace_id     text,
    reason       text,
    details      jsonb       NOT NULL DEFAULT '{}'::jsonb,
    count        integer     NOT NULL DEFAULT 1 CHECK (count >= 1),
    chain_id     uuid        NOT NULL,
    seq          bigint      NOT NULL CHECK (seq >= 1),
    prev_hash    bytea       NOT NULL,
    hash         bytea       NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);

CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- The admin query (newest first, keyset on (occurred_at, id)) and its filters.
CREATE INDEX audit_events_time ON audit_events (occurred_at DESC, id DESC);
CREATE INDEX audit_events_type_time ON audit_events (type, occurred_at DESC, id DESC);
CREATE INDEX audit_events_subject_time ON audit_events (subject_sub, occurred_at DESC, id DESC);
CREATE INDEX audit_events_actor_time ON audit_events (actor_sub, occurred_at DESC, id DESC);
CREATE INDEX audit_events_request ON audit_events (request_id);
-- `audit verify` walks each chain by seq.
CREATE INDEX audit_events_chain ON audit_events (chain_id, seq);

CREATE FUNCTION audit_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- Row triggers on a partitioned table are cloned onto every partition, present and future.
CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events_default
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

-- Creates the monthly partitions covering [month of from_ts, + months]. Idempotent,
-- serialised by an advisory lock (several writers start at once), and runs as the
-- owner (SECURITY DEFINER, search_path pinned below) so `auth_app` needs no DDL
-- rights. A month whose rows already sit in the default partition is left there
-- (creating it would fail).
CREATE FUNCTION audit_ensure_partitions(from_ts timestamptz, months integer)
RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    start_ts timestamptz;
    end_ts timestamptz;
    part text;
    created integer := 0;
    in_default boolean;
BEGIN
    PERFORM pg_advisory_xact_lock(7365410723);
    FOR i IN 0..months LOOP
        start_ts := date_trunc('month', from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                    + make_interval(months => i);
        end_ts := start_ts + interval '1 month';
        part := format('audit_events_y%sm%s', to_char(start_ts AT TIME ZONE 'UTC', 'YYYY'),
                       to_char(start_ts AT TIME ZONE 'UTC', 'MM'));
        CONTINUE WHEN to_regclass(quote_ident(part)) IS NOT NULL;
        SELECT EXISTS (SELECT 1 FROM audit_events_default
                       WHERE occurred_at >= start_ts AND occurred_at < end_ts)
            INTO in_default;
        CONTINUE WHEN in_default;
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%L) TO (%L)',
                       part, start_ts, end_ts);
        EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()', part);
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;

-- SECURITY DEFINER functions must not trust the caller's search_path: pin it to
-- the schema this migration runs in.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_ensure_partitions(timestamptz, integer) '
                   'SET search_path = %I, pg_temp', current_schema());
END
$$;

SELECT audit_ensure_partitions(now() - interval '1 month', 3);

REVOKE ALL ON audit_events FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_ensure_partitions(timestamptz, integer) FROM PUBLIC;

"""The guard's tables and its admission function, in their own ``weaver_guard`` schema.

Admission is one PL/pgSQL function, ``weaver_guard.admit``, so that a request costs one
round trip and its decision is atomic: the caller's rate-limit row is locked for the
statement, so concurrent requests of one caller — from any gateway on the same
database — are decided one after the other. Its GCRA lines mirror
`weaver.ratelimit.Gcra.check` (all integers, microseconds), on the database's clock so
that every gateway host counts on one clock.

Every statement is idempotent (``IF NOT EXISTS``, ``OR REPLACE``) and runs under an
advisory lock, so gateways starting together set the schema up once. A change to a
table's layout would need a migration; none has been made yet.
"""

from __future__ import annotations

from typing import Any

SCHEMA = "weaver_guard"

# An arbitrary constant naming the lock taken around setting the schema up.
_SCHEMA_LOCK = 0x77677264  # "wgrd"

STATEMENTS = (
    f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.now_us() RETURNS bigint
        LANGUAGE sql VOLATILE
        AS $$ SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::bigint $$""",
    # Unlogged: a rate-limit row is worth less than the WAL write per request it would
    # cost. After a crash of the database the callers start with full allowances.
    f"""CREATE UNLOGGED TABLE IF NOT EXISTS {SCHEMA}.rate_limits (
        caller text PRIMARY KEY,
        tat_us bigint NOT NULL
    )""",
    # status, body and headers stay NULL while the first request is in flight.
    f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.idempotency_records (
        caller text NOT NULL,
        idempotency_key text NOT NULL,
        fingerprint text NOT NULL,
        claim_token text NOT NULL,
        expires_us bigint NOT NULL,
        status integer,
        body bytea,
        headers jsonb,
        PRIMARY KEY (caller, idempotency_key)
    )""",
    f"""CREATE INDEX IF NOT EXISTS idempotency_records_expiry
        ON {SCHEMA}.idempotency_records (expires_us)""",
    f"""CREATE OR REPLACE FUNCTION {SCHEMA}.admit(
        p_caller text,
        p_interval_us bigint,
        p_limit bigint,
        p_key text,
        p_fingerprint text,
        p_token text,
        p_lease_us bigint,
        OUT allowed boolean,
        OUT remaining bigint,
        OUT reset_us bigint,
        OUT retry_after_us bigint,
        OUT new_tat_us bigint,
        OUT outcome text,
        OUT replay_status integer,
        OUT replay_body bytea,
        OUT replay_headers text
    )
    LANGUAGE plpgsql VOLATILE
    AS $fn$
    DECLARE
        now_us bigint := {SCHEMA}.now_us();
        burst_us bigint := p_limit * p_interval_us;
        base_us bigint;
        debt_us bigint;
        held {SCHEMA}.idempotency_records%ROWTYPE;
    BEGIN
        outcome := 'none';
        -- Create the caller's row if it is new, then lock it until the statement ends;
        -- again if the sweep removed it in between.
        LOOP
            INSERT INTO {SCHEMA}.rate_limits (caller, tat_us) VALUES (p_caller, now_us)
                ON CONFLICT (caller) DO NOTHING;
            SELECT greatest(r.tat_us, now_us) INTO base_us
                FROM {SCHEMA}.rate_limits r WHERE r.caller = p_caller FOR UPDATE;
            EXIT WHEN FOUND;
        END LOOP;

        new_tat_us := base_us + p_interval_us;
        debt_us := new_tat_us - now_us;
        IF debt_us > burst_us THEN
            allowed := false;
            remaining := 0;
            reset_us := base_us - now_us;
            retry_after_us := debt_us - burst_us;
            new_tat_us := base_us;
            RETURN;
        END IF;
        UPDATE {SCHEMA}.rate_limits SET tat_us = new_tat_us WHERE caller = p_caller;
        allowed := true;
        remaining := (burst_us - debt_us) / p_interval_us;
        reset_us := debt_us;
        retry_after_us := 0;

        IF p_key IS NULL THEN
            RETURN;
        END IF;
        LOOP
            INSERT INTO {SCHEMA}.idempotency_records
                    (caller, idempotency_key, fingerprint, claim_token, expires_us)
                VALUES (p_caller, p_key, p_fingerprint, p_token, now_us + p_lease_us)
                ON CONFLICT (caller, idempotency_key) DO NOTHING;
            IF FOUND THEN
                outcome := 'claimed';
                RETURN;
            END IF;
            SELECT * INTO held FROM {SCHEMA}.idempotency_records
                WHERE caller = p_caller AND idempotency_key = p_key FOR UPDATE;
            -- Gone between the two statements (the sweep): claim it in the next turn.
            EXIT WHEN FOUND;
        END LOOP;

        IF held.expires_us <= now_us THEN
            UPDATE {SCHEMA}.idempotency_records
                SET fingerprint = p_fingerprint, claim_token = p_token,
                    expires_us = now_us + p_lease_us, status = NULL, body = NULL, headers = NULL
                WHERE caller = p_caller AND idempotency_key = p_key;
            outcome := 'claimed';
        ELSIF held.fingerprint <> p_fingerprint THEN
            outcome := 'mismatch';
        ELSIF held.status IS NULL THEN
            outcome := 'in_flight';
        ELSE
            outcome := 'replay';
            replay_status := held.status;
            replay_body := held.body;
            replay_headers := held.headers::text;
        END IF;
    END
    $fn$""",
)

ADMIT = f"SELECT * FROM {SCHEMA}.admit($1, $2, $3, $4, $5, $6, $7)"

# Only the claim's holder settles, only while its lease holds, and an answered record is
# never overwritten (as in the Redis guard).
STORE = f"""UPDATE {SCHEMA}.idempotency_records
    SET status = $4, body = $5, headers = $6::jsonb, expires_us = {SCHEMA}.now_us() + $7
    WHERE caller = $1 AND idempotency_key = $2 AND claim_token = $3
      AND status IS NULL AND expires_us > {SCHEMA}.now_us()"""
RELEASE = f"""DELETE FROM {SCHEMA}.idempotency_records
    WHERE caller = $1 AND idempotency_key = $2 AND claim_token = $3 AND status IS NULL"""

# A TAT in the past means the same as no row; an expired record the same as none.
SWEEP = (
    f"DELETE FROM {SCHEMA}.rate_limits WHERE tat_us < {SCHEMA}.now_us()",
    f"DELETE FROM {SCHEMA}.idempotency_records WHERE expires_us < {SCHEMA}.now_us()",
)


async def ensure_schema(connection: Any) -> None:
    async with connection.transaction():
        await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
        for statement in STATEMENTS:
            await connection.execute(statement)

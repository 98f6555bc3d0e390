-- Anomaly detection and trust scoring. Timestamps are Unix milliseconds (UTC).

-- A suspended agent (anomaly.suspendOn) keeps status 'active' with
-- suspended_at set: it reads as "suspended" until an admin resumes it.
ALTER TABLE agents ADD COLUMN suspended_at BIGINT;

-- What each agent did in each hour (hour: the hour's start), folded from the
-- committed decision rows by every replica: they add to the same row.
CREATE TABLE anomaly_counters (
    agent_id VARCHAR(256) NOT NULL,
    hour     BIGINT NOT NULL,
    calls    BIGINT NOT NULL,
    denials  BIGINT NOT NULL,
    PRIMARY KEY (agent_id, hour)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX anomaly_counters_hour ON anomaly_counters (hour);

-- The distinct resources an agent was denied no_permission in an hour, with
-- the first audit row that asked for each (probing's evidence). A resource
-- (up to 1024 bytes) is longer than an index key may be: the key holds its
-- SHA-256, so that (agent_id, hour, resource) stays unique as a whole.
CREATE TABLE anomaly_probes (
    agent_id      VARCHAR(256) NOT NULL,
    hour          BIGINT NOT NULL,
    resource      TEXT NOT NULL,
    audit_id      VARCHAR(256) NOT NULL,
    resource_hash BINARY(32) AS (UNHEX(SHA2(resource, 256))) STORED,
    UNIQUE KEY anomaly_probes_key (agent_id, hour, resource_hash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX anomaly_probes_hour ON anomaly_probes (hour);

-- One anomaly per agent, type and window (window_start: the hour's start, or
-- the day's for off_hours). evidence is a JSON object.
CREATE TABLE anomalies (
    id           VARCHAR(256) NOT NULL PRIMARY KEY,
    agent_id     VARCHAR(256) NOT NULL,
    type         VARCHAR(64) NOT NULL,
    severity     VARCHAR(16) NOT NULL CHECK (severity IN ('low', 'medium', 'high')),
    window_start BIGINT NOT NULL,
    detected_at  BIGINT NOT NULL,
    description  TEXT NOT NULL,
    evidence     MEDIUMTEXT NOT NULL,
    UNIQUE KEY anomalies_window (agent_id, type, window_start),
    FOREIGN KEY (agent_id) REFERENCES agents (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX anomalies_agent_id ON anomalies (agent_id, id);
CREATE INDEX anomalies_type_id ON anomalies (type, id);

-- Each agent's latest trust (score, level, factors as JSON, computed_at),
-- the running total of its allowed calls, and the score and time of its
-- last level change: what the policy sees (level_score, level_at).
CREATE TABLE agent_trust (
    agent_id      VARCHAR(256) NOT NULL PRIMARY KEY,
    score         INTEGER NOT NULL,
    level         VARCHAR(32) NOT NULL,
    factors       MEDIUMTEXT NOT NULL,
    computed_at   BIGINT NOT NULL,
    allowed_calls BIGINT NOT NULL,
    level_score   INTEGER NOT NULL,
    level_at      BIGINT NOT NULL,
    FOREIGN KEY (agent_id) REFERENCES agents (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
CREATE INDEX agent_trust_computed ON agent_trust (computed_at);

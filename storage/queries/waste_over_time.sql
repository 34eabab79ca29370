-- Waste over time (docs/schema.md, "Waste over time"): per usage snapshot and license type
-- with ts in [from, to), the inactive and unassigned seats and what they cost a year,
-- recomputed from the snapshot's counts and the terms of the policy revision then in force
-- (policy_changes, its terms' arrays joined per license type); NULL where that revision
-- leaves the price or the seats unset (-1), where no policy was in force, or where a cost
-- would be beyond Int64 (never wrapped). Both subqueries
-- carry an alias, as current releases require. The counts are read through the Buffer table
-- (docs/schema.md, "Buffers"): of the rows of a key the buffer and the parts hold, the last
-- written (argMax by version) is kept; an ORDER BY … LIMIT 1 BY in this subquery was not
-- kept in order by 26.5 every time.
SELECT ts, license_type, policy_revision, inactive,
       if(known = 0 OR seats < 0, NULL, toUInt32(greatest(seats - licenses, 0))) AS unassigned,
       currency,
       if(known = 0 OR cost < 0 OR inactive > intDiv(9223372036854775807, greatest(cost, 1)), NULL, inactive * cost) AS inactive_cost,
       if(known = 0 OR cost < 0 OR seats < 0, NULL, greatest(seats - licenses, 0) * cost) AS unassigned_cost
FROM (
    SELECT ts, license_type, argMax(policy_revision, version) AS policy_revision,
           argMax(licenses, version) AS licenses, argMax(inactive, version) AS inactive
    FROM {db}.usage_counts_buffer FINAL
    WHERE tenant_id = @tenant AND app = @app
      AND ts >= toDateTime(@from, 'UTC') AND ts < toDateTime(@to, 'UTC')
    GROUP BY ts, license_type
) AS counts
ANY LEFT JOIN (
    SELECT revision AS policy_revision, license_type, seats, cost, currency, toUInt8(1) AS known
    FROM {db}.policy_changes FINAL
    ARRAY JOIN license_types AS license_type, seats_purchased AS seats, annual_costs AS cost, currencies AS currency
    WHERE tenant_id = @tenant AND app = @app
) AS terms USING (policy_revision, license_type)
ORDER BY ts, license_type

package storage

// userPerformerSQL is the condition under which an audit event's performer_id is the id of a
// user: a positive decimal Int64 written plainly (no sign, no leading zero, no spaces), at most
// 9223372036854775807. Only such ids reach toInt64OrZero, whose answer for anything else
// depends on the ClickHouse version: an id beyond Int64 wraps around on 18.16 (so
// 18446744073709551617 would count as user 1) and gives 0 on current releases
// (docs/schema.md, "18.16 and current releases"). A 19-digit id is compared as a string with
// the largest Int64, which orders like the numbers since both have 19 digits. Greenhouse's
// user ids are JSON numbers, which the connector keeps as written.
const userPerformerSQL = `match(performer_id, '^[1-9][0-9]{0,18}$') AND (length(performer_id) < 19 OR performer_id <= '9223372036854775807')`

package storage

import "regexp"

// userPerformerSQL is the condition under which an audit event's performer_id is the id of a
// user: a positive decimal Int64 written plainly (no sign, no leading zero, no spaces), at most
// 9223372036854775807. Only such ids reach toInt64OrZero, whose answer for anything else
// depends on the ClickHouse version: an id beyond Int64 wraps around on 18.16 (so
// 18446744073709551617 would count as user 1) and gives 0 on current releases
// (docs/schema.md, "18.16 and current releases"). A 19-digit id is compared as a string with
// the largest Int64, which orders like the numbers since both have 19 digits. Greenhouse's
// user ids are JSON numbers, which the connector keeps as written.
const userPerformerSQL = `match(performer_id, '^[1-9][0-9]{0,18}$') AND (length(performer_id) < 19 OR performer_id <= '9223372036854775807')`

// apiRequestRE is SeatUseSQL's test of an API request's request.type.
var apiRequestRE = regexp.MustCompile(`^([A-Z]+ )?(/|http)`)

// userPerformerRE is userPerformerSQL's pattern.
var userPerformerRE = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// SeatUse is SeatUseSQL and userPerformerSQL in Go: whether an audit event is a user's use of a
// seat that UserActivity and RefreshDailyActivity count (TestSeatUseSQLAgreesWithTheSimulator
// keeps the two alike). A poll whose new events include none such leaves every user's
// activity as it was.
func SeatUse(performerType, performerID, eventType, requestType string) bool {
	return performerType == "user" && eventType != "harvest_access" && !apiRequestRE.MatchString(requestType) &&
		userPerformerRE.MatchString(performerID) && (len(performerID) < 19 || performerID <= "9223372036854775807")
}

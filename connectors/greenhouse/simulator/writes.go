package simulator

import (
	"net/http"
	"slices"
	"strconv"
	"time"
)

// Harvest v3's user-status writes: POST /v3/users/{id}/deactivate and /activate, as the
// reference documents them (docs/greenhouse-wire.md): 204 No Content whether or not the user
// was already in that state; 401 without a valid token; 403 for a missing scope or a sub who
// is not a Site Admin; 422 for an id the organisation does not have. Both go through the
// Harvest limit like every list.

// Writes returns the user-status writes the organisation accepted (204), in order: "deactivate
// <id>" or "activate <id>".
func (o *Org) Writes() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.writes)
}

// setStatus serves one write: deactivate sets the user deactivated, activate active.
func (s *Server) setStatus(scope string, deactivate bool) http.HandlerFunc {
	verb := "activate"
	if deactivate {
		verb = "deactivate"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		a, ok := s.front(w, r, "harvest", scope, false)
		if !ok {
			return
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || !s.applyStatus(a, r, id, verb, deactivate) {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"message": "Unprocessable Content",
				"errors": []string{"User " + strconv.Quote(r.PathValue("id")) + " could not be " + verb + "d."}})
			return
		}
		// The write is done; its answer may be slow (Faults.WriteAnswerDelay), and a client
		// that gives up meanwhile does not undo it.
		time.Sleep(a.f.WriteAnswerDelay)
		w.WriteHeader(http.StatusNoContent)
	}
}

// applyStatus applies one accepted write, or reports false for an id the organisation does
// not take.
func (s *Server) applyStatus(a admitted, r *http.Request, id int64, verb string, deactivate bool) bool {
	o := a.org
	o.mu.Lock()
	defer o.mu.Unlock()
	u := o.byID[id]
	if u == nil || u.Removed || slices.Contains(a.f.FailWrites, id) {
		return false
	}
	if u.Deactivated != deactivate {
		u.Deactivated = deactivate
		u.UpdatedAt = o.now()
	}
	o.writes = append(o.writes, verb+" "+strconv.FormatInt(id, 10))
	if a.sub != 0 && s.documented() {
		o.recordHarvestAccess(a.sub, a.now, 0, requestTarget(r))
	}
	o.activateOnWrite(a.now)
	return true
}

// activateOnWrite makes the users of Faults.ActiveOnWrite active now, once. The caller holds
// o.mu.
func (o *Org) activateOnWrite(now time.Time) {
	if len(o.faults.ActiveOnWrite) == 0 {
		return
	}
	var evs []event
	for _, id := range o.faults.ActiveOnWrite {
		if _, ok := o.byID[id]; ok {
			evs = append(evs, o.userEvent(id, now, typeAction))
		}
	}
	o.faults.ActiveOnWrite = nil
	o.insertEvents(evs)
}

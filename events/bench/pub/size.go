package main

import (
	"encoding/json"

	"github.com/seatwatch/greenhouse-collector/events"
)

func envJSONLen(env events.Envelope) (int, error) {
	b, err := json.Marshal(env)
	return len(b), err
}

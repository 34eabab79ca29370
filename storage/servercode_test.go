package storage

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/ClickHouse/ch-go"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
)

// Both drivers' server exceptions are read alike: the audit writer's ch-go connections and
// the clickhouse-go pool retry the same codes, and only those among server exceptions.
func TestServerCodeOfBothDrivers(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("insert: %w", err) }
	for _, c := range []struct {
		err       error
		code      int32
		retryable bool
	}{
		{wrap(&clickhouse.Exception{Code: 252}), 252, true}, // too many parts
		{wrap(&clickhouse.Exception{Code: 60}), 60, false},  // unknown table
		{wrap(&ch.Exception{Code: 252}), 252, true},         // the same, from ch-go
		{wrap(&ch.Exception{Code: 60}), 60, false},
		{wrap(io.ErrUnexpectedEOF), 0, true}, // a lost connection
		{wrap(errors.New("connection refused")), 0, true},
	} {
		assert.Equal(t, c.code, exceptionCode(c.err), "%v", c.err)
		assert.Equal(t, c.retryable, retryable(c.err), "%v", c.err)
	}
}

package storagetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

func TestNewStoreIsFreshAndDropped(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for range 2 {
		t.Run("store", func(t *testing.T) {
			s := storagetest.NewStore(t)
			names = append(names, s.Database())
			n, err := s.CountAuditEvents(ctx, "any")
			require.NoError(t, err, "migrated")
			assert.Zero(t, n)
		})
	}
	require.Len(t, names, 2)
	assert.NotEqual(t, names[0], names[1])

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{storagetest.Addr(t)}})
	require.NoError(t, err)
	defer conn.Close()
	var left uint64
	require.NoError(t, conn.QueryRow(ctx, "SELECT count() FROM system.databases WHERE name IN (?, ?)", names[0], names[1]).Scan(&left))
	assert.Zero(t, left, "the databases are dropped")
}

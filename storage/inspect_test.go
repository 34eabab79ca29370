package storage_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/seatwatch/greenhouse-collector/storage"
	"github.com/seatwatch/greenhouse-collector/storage/storagetest"
)

func TestRowCountsAndDump(t *testing.T) {
	s := storagetest.NewStore(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	require.NoError(t, s.UpsertUsers(ctx, []storage.UserRow{{TenantID: "acme", App: "greenhouse", UserID: 7, Name: "Needle Person",
		Email: "needle@acme.example", Status: "active", LicenseType: "basic", CreatedAt: now, UpdatedAt: now, FirstSeenAt: now, LastSeenAt: now, Version: 1}}))
	counts, err := s.RowCounts(ctx)
	require.NoError(t, err)
	assert.Len(t, counts, len(storage.Tables))
	assert.Equal(t, uint64(1), counts["users"])
	assert.Equal(t, uint64(0), counts["audit_events"])
	dump, err := s.DumpText(ctx)
	require.NoError(t, err)
	assert.Contains(t, dump, "needle@acme.example")
	assert.Contains(t, dump, "Needle Person")
}

package storage

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReplicatedDDL: with a cluster, every CREATE TABLE of the schema runs ON CLUSTER with a
// ReplicatedReplacingMergeTree keeping its replacing version; other statements are unchanged.
func TestReplicatedDDL(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{
			name: "versioned",
			in:   "CREATE TABLE IF NOT EXISTS {db}.users (\n    user_id Int64,\n    version UInt64\n) ENGINE = ReplacingMergeTree(version)\nORDER BY (user_id)",
			want: "CREATE TABLE IF NOT EXISTS {db}.users ON CLUSTER `prod` (\n    user_id Int64,\n    version UInt64\n) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/saas/users', '{replica}', version)\nORDER BY (user_id)",
		},
		{
			name: "unversioned",
			in:   "CREATE TABLE IF NOT EXISTS {db}.license_counts (ts DateTime('UTC')) ENGINE = ReplacingMergeTree\nPARTITION BY toYYYYMM(ts)\nORDER BY ts",
			want: "CREATE TABLE IF NOT EXISTS {db}.license_counts ON CLUSTER `prod` (ts DateTime('UTC')) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/saas/license_counts', '{replica}')\nPARTITION BY toYYYYMM(ts)\nORDER BY ts",
		},
		{
			name: "buffer",
			in:   "CREATE TABLE IF NOT EXISTS {db}.sync_runs_buffer AS {db}.sync_runs\nENGINE = Buffer({db}, sync_runs, 1, 5, 5, 100000, 100000, 16777216, 16777216)",
			want: "CREATE TABLE IF NOT EXISTS {db}.sync_runs_buffer ON CLUSTER `prod` AS {db}.sync_runs\nENGINE = Buffer({db}, sync_runs, 1, 5, 5, 100000, 100000, 16777216, 16777216)",
		},
		{
			name: "alter replicates by itself",
			in:   "ALTER TABLE {db}.users ADD COLUMN IF NOT EXISTS x String",
			want: "ALTER TABLE {db}.users ADD COLUMN IF NOT EXISTS x String",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, replicatedDDL(tc.in, "prod", "saas"))
		})
	}

	t.Run("the whole schema", func(t *testing.T) {
		migs, err := loadMigrations(migrationsFS, "migrations")
		require.NoError(t, err)
		stmts := []string{schemaMigrationsDDL}
		for _, m := range migs {
			stmts = append(stmts, m.statements...)
		}
		s := &Store{cfg: Config{Database: "saas", Cluster: "prod"}, db: "`saas`"}
		engine := regexp.MustCompile(`ENGINE = ReplicatedReplacingMergeTree\('/clickhouse/tables/\{shard\}/saas/([a-z_]+)', '\{replica\}'(, version)?\)`)
		creates, buffers := 0, 0
		for _, st := range stmts {
			got := s.ddl(st)
			if !strings.Contains(st, "CREATE TABLE") {
				assert.Equal(t, s.sql(st), got)
				continue
			}
			creates++
			if strings.Contains(st, "ENGINE = Buffer(") {
				// Each server buffers what it is sent, in front of its own replica.
				buffers++
				assert.Regexp(t, "^CREATE TABLE IF NOT EXISTS `saas`.([a-z_]+)_buffer ON CLUSTER `prod` AS `saas`.([a-z_]+)\n", got)
				continue
			}
			assert.Contains(t, got, " ON CLUSTER `prod` (")
			m := engine.FindStringSubmatch(got)
			if assert.NotNil(t, m, got) {
				assert.Contains(t, got, "CREATE TABLE IF NOT EXISTS `saas`."+m[1]+" ON CLUSTER")
				assert.Equal(t, strings.Contains(st, "ReplacingMergeTree(version)"), m[2] != "", "the replacing version is kept")
			}
			assert.NotRegexp(t, `ENGINE = ReplacingMergeTree`, got)
		}
		assert.Equal(t, len(Tables)+1+len(buffered), creates, "every table, its buffer and schema_migrations")
		assert.Equal(t, len(buffered), buffers)
		assert.Equal(t, "CREATE DATABASE IF NOT EXISTS `saas` ON CLUSTER `prod`", s.createDatabaseSQL())
		s.cfg.Cluster = ""
		assert.Equal(t, "CREATE DATABASE IF NOT EXISTS `saas`", s.createDatabaseSQL())
		assert.Equal(t, s.sql(schemaMigrationsDDL), s.ddl(schemaMigrationsDDL), "no cluster: the schema as it is")
	})
}

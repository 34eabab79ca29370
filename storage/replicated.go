package storage

import (
	"fmt"
	"regexp"
	"strings"
)

// clusterRE is what a cluster name (a <remote_servers> entry of the server's configuration)
// may look like.
var clusterRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)

var (
	createTableRE = regexp.MustCompile(`(?is)^(\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+\{db\}\.([A-Za-z_][A-Za-z0-9_]*))\s*(\(|AS\s)`)
	engineRE      = regexp.MustCompile(`(?is)ENGINE\s*=\s*ReplacingMergeTree\b(\s*\(([^)]*)\))?`)
)

// replicatedDDL rewrites a schema statement for a replicated ClickHouse cluster
// (Config.Cluster, docs/schema.md "Replicated deployments"): CREATE TABLE runs ON CLUSTER, on
// every server of the cluster, and its ReplacingMergeTree becomes a
// ReplicatedReplacingMergeTree whose Keeper path names the shard macro, the database and the
// table, with the replica macro as replica name: each replica keeps the whole table, and the
// replacing version (if any) is kept. A Buffer table (CREATE TABLE … AS) runs ON CLUSTER too:
// each server buffers the rows it is sent in front of its own replica. Other statements are returned unchanged: an ALTER of a
// replicated table replicates by itself, and the collector's inserts and queries need no
// change (every server holds every row; there is one shard).
func replicatedDDL(st, cluster, database string) string {
	m := createTableRE.FindStringSubmatchIndex(st)
	if m == nil {
		return st
	}
	table := st[m[4]:m[5]]
	st = st[:m[3]] + " ON CLUSTER `" + cluster + "`" + st[m[3]:]
	path := fmt.Sprintf("'/clickhouse/tables/{shard}/%s/%s'", database, table)
	return engineRE.ReplaceAllStringFunc(st, func(engine string) string {
		args := path + ", '{replica}'"
		if v := strings.TrimSpace(engineRE.FindStringSubmatch(engine)[2]); v != "" {
			args += ", " + v
		}
		return "ENGINE = ReplicatedReplacingMergeTree(" + args + ")"
	})
}

// ddl prepares a schema statement for the configured deployment and replaces {db}.
func (s *Store) ddl(st string) string {
	if s.cfg.Cluster != "" {
		st = replicatedDDL(st, s.cfg.Cluster, s.cfg.Database)
	}
	return s.sql(st)
}

// createDatabaseSQL is what Open runs: ON CLUSTER on a replicated cluster. The database engine
// is the server's default (Ordinary on 18.16, Atomic on current releases; docs/schema.md).
func (s *Store) createDatabaseSQL() string {
	q := "CREATE DATABASE IF NOT EXISTS " + s.db
	if s.cfg.Cluster != "" {
		q += " ON CLUSTER `" + s.cfg.Cluster + "`"
	}
	return q
}

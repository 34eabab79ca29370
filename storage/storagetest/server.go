package storagetest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ServerOptions configure a throwaway clickhouse-server.
type ServerOptions struct {
	// Timezone is the server's time zone (config <timezone>); empty keeps the machine's.
	Timezone string
}

// Server is a throwaway clickhouse-server on free loopback ports with its data in a
// temporary directory. It can be stopped and started again on the same data and ports.
type Server struct {
	dir      string
	bin      []string
	tcp      int
	cmd      *exec.Cmd
	exited   chan struct{}
	watchdog bool
}

// FindServer returns the command that runs clickhouse-server, looked up like
// deploy/local/clickhouse.sh does: clickhouse-server on PATH, in /usr/bin or /usr/sbin, or
// "clickhouse server".
func FindServer() ([]string, error) {
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return []string{p}, nil
	}
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return []string{p}, nil
		}
	}
	if p, err := exec.LookPath("clickhouse"); err == nil {
		return []string{p, "server"}, nil
	}
	return nil, errors.New("clickhouse-server not found (install it with deploy/local/clickhouse.sh install)")
}

// StartServer starts a server for one test; t.Cleanup stops it and removes its data.
// It fails the test when the server cannot be found or started.
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	bin, err := FindServer()
	if err != nil {
		t.Fatalf("start clickhouse: %v", err)
	}
	s, err := newServer(bin, t.TempDir(), opts, false)
	if err != nil {
		t.Fatalf("start clickhouse: %v", err)
	}
	t.Cleanup(s.Stop)
	if err := s.Start(); err != nil {
		t.Fatalf("start clickhouse: %v", err)
	}
	return s
}

func newServer(bin []string, dir string, opts ServerOptions, watchdog bool) (*Server, error) {
	tcp, err := freePort()
	if err != nil {
		return nil, err
	}
	http, err := freePort()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"tmp", "user_files", "format_schemas"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("create server directory: %w", err)
		}
	}
	tz := ""
	if opts.Timezone != "" {
		tz = "<timezone>" + opts.Timezone + "</timezone>"
	}
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><log>%[1]s/server.log</log><errorlog>%[1]s/server.err.log</errorlog></logger>
    <http_port>%[2]d</http_port>
    <tcp_port>%[3]d</tcp_port>
    <listen_host>127.0.0.1</listen_host>
    <path>%[1]s/</path>
    <tmp_path>%[1]s/tmp/</tmp_path>
    <user_files_path>%[1]s/user_files/</user_files_path>
    <format_schema_path>%[1]s/format_schemas/</format_schema_path>
    <users_config>%[1]s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>536870912</mark_cache_size>
    <max_concurrent_queries>200</max_concurrent_queries>
    %[4]s
</yandex>
`, dir, http, tcp, tz)
	users := `<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>4000000000</max_memory_usage></default></profiles>
    <users><default><password></password><networks><ip>::1</ip><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return nil, fmt.Errorf("write server config: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644); err != nil {
		return nil, fmt.Errorf("write server users: %w", err)
	}
	return &Server{dir: dir, bin: bin, tcp: tcp, watchdog: watchdog}, nil
}

// watchdogScript runs the server as its child and ends it, then removes the data directory,
// when the test process ($1) is gone, whichever way it ended.
const watchdogScript = `parent=$1; dir=$2; shift 2
"$@" & srv=$!
stop() { kill "$srv" 2>/dev/null; i=0; while kill -0 "$srv" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done; kill -9 "$srv" 2>/dev/null; wait "$srv" 2>/dev/null; rm -rf "$dir"; exit 0; }
trap stop TERM INT HUP
while kill -0 "$parent" 2>/dev/null && kill -0 "$srv" 2>/dev/null; do sleep 0.5; done
stop`

// Addr returns the server's native-protocol address.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.tcp) }

// Start starts the server (again) and waits until it answers a ping.
func (s *Server) Start() error {
	args := append(append([]string(nil), s.bin...), "--config-file="+filepath.Join(s.dir, "config.xml"))
	if s.watchdog {
		args = append([]string{"/bin/sh", "-c", watchdogScript, "sh", strconv.Itoa(os.Getpid()), s.dir}, args...)
	}
	log, err := os.OpenFile(filepath.Join(s.dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("run %s: %w", strings.Join(s.bin, " "), err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func(exited chan struct{}) {
		_ = cmd.Wait()
		_ = log.Close()
		close(exited)
	}(s.exited)
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := ping(s.Addr())
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("clickhouse-server exited during start-up: %s", s.logTail())
		default:
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("clickhouse-server did not answer within 60 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill ends the server with SIGKILL (a crash) and waits for it to exit.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// Stop stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	select {
	case <-s.exited:
		s.cmd = nil
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "server.err.log"))
	if len(b) == 0 {
		b, _ = os.ReadFile(filepath.Join(s.dir, "stdout.log"))
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func ping(addr string) error {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return conn.Ping(ctx)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

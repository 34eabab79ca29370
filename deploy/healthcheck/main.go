// Command healthcheck is the container health probe of the collector image. The image is
// distroless (no shell, curl or wget), so docker-compose healthchecks run this binary instead:
// it sends one GET to the URL given as its argument (default http://127.0.0.1:8080/readyz),
// ignoring proxy variables, and exits 0 on a 2xx answer within the timeout, 1 otherwise.
//
//	/healthcheck [-timeout 5s] [URL]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	timeout := flag.Duration("timeout", 5*time.Second, "bound on the whole probe")
	flag.Parse()
	url := "http://127.0.0.1:8080/readyz"
	if flag.NArg() > 0 {
		url = flag.Arg(0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	err := probe(ctx, url)
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// probe GETs url and returns nil when the answer is 2xx. It never uses a proxy: the probe
// targets the container itself.
func probe(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	client := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe %s: status %d: %s", url, resp.StatusCode, body)
	}
	return nil
}

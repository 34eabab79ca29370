package collector

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetricsDocumented keeps the metrics table of docs/api.md equal to the metrics the
// collector registers: names and labels.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/api.md")
	require.NoError(t, err)
	section := string(doc)
	i := strings.Index(section, "\n## Metrics\n")
	require.GreaterOrEqual(t, i, 0, "docs/api.md has a Metrics section")
	section = section[i:]
	row := regexp.MustCompile("(?m)^\\| `(collector_[a-z_]+)` \\| ([^|]*) \\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		documented[m[1]] = strings.TrimSpace(m[2])
	}

	descRe := regexp.MustCompile(`fqName: "([^"]+)".*variableLabels: \{([^}]*)\}`)
	registered := map[string]string{}
	ch := make(chan *prometheus.Desc, 64)
	for _, c := range newMetrics().own {
		c.Describe(ch)
	}
	close(ch)
	for d := range ch {
		m := descRe.FindStringSubmatch(d.String())
		require.NotNil(t, m, d.String())
		labels := strings.Fields(strings.ReplaceAll(m[2], ",", " "))
		sort.Strings(labels)
		for i, l := range labels {
			labels[i] = "`" + l + "`"
		}
		registered[m[1]] = strings.Join(labels, ", ")
		if registered[m[1]] == "" {
			registered[m[1]] = "none"
		}
	}
	assert.Equal(t, registered, documented, "docs/api.md#metrics: | `name` | labels (sorted, comma-separated, or none) | meaning |")
}

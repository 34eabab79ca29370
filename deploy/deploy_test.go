package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/seatwatch/greenhouse-collector/collector"
)

// requiredSecrets are the settings without which the collector refuses to start; every
// deployment shape must provide them.
var requiredSecrets = []string{"COLLECTOR_API_TOKEN", "COLLECTOR_SECRET_KEYS"}

// testSecrets stand in for the operator's secrets when a shape's configuration is loaded.
var testSecrets = map[string]string{
	"COLLECTOR_API_TOKEN":           "0123456789abcdef0123",
	"COLLECTOR_SECRET_KEYS":         "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
	"COLLECTOR_CLICKHOUSE_PASSWORD": "a-password",
	"CLICKHOUSE_PASSWORD":           "a-password",
}

// knownVars returns the collector's environment variables, read from collector.ConfigDoc():
// a markdown table whose first column is the flag and second the variable, in backticks.
func knownVars(t *testing.T) map[string]bool {
	t.Helper()
	vars := map[string]bool{}
	for _, line := range strings.Split(collector.ConfigDoc(), "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		cols := strings.Split(line, "|")
		require.GreaterOrEqual(t, len(cols), 4, "config doc row %q", line)
		flagName := strings.TrimPrefix(strings.Trim(strings.TrimSpace(cols[1]), "`"), "-")
		env := strings.Trim(strings.TrimSpace(cols[2]), "`")
		require.Equal(t, collector.EnvName(flagName), env, "config doc row %q", line)
		vars[env] = true
	}
	for _, v := range append([]string{"COLLECTOR_NATS_URL", "COLLECTOR_CLICKHOUSE_ADDR", "COLLECTOR_REPLICA_ID", "COLLECTOR_HTTP_ADDR"}, requiredSecrets...) {
		require.True(t, vars[v], "collector.ConfigDoc() lists no %s: the table format changed?", v)
	}
	return vars
}

var collectorVarRE = regexp.MustCompile(`\bCOLLECTOR_[A-Z0-9_]*[A-Z0-9]`)

// deploymentOnlyVars are COLLECTOR_* names that belong to the deployment files, not to the
// collector: the image and the host address used by docker-compose.
var deploymentOnlyVars = map[string]bool{"COLLECTOR_IMAGE": true, "COLLECTOR_BIND": true}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

func TestCollectorVariablesExist(t *testing.T) {
	known := knownVars(t)
	tests := []struct {
		file        string
		composeVars bool // may also name the compose-only variables
	}{
		{file: "docker-compose.yml", composeVars: true},
		{file: ".env.example", composeVars: true},
		{file: "README.md", composeVars: true},
		{file: "kubernetes/configmap.yaml"},
		{file: "kubernetes/secret.example.yaml"},
		{file: "kubernetes/deployment.yaml"},
		{file: "../Dockerfile"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			refs := collectorVarRE.FindAllString(readFile(t, tt.file), -1)
			require.NotEmpty(t, refs)
			for _, v := range refs {
				if tt.composeVars && deploymentOnlyVars[v] {
					continue
				}
				assert.True(t, known[v], "%s names %s, which is not a collector setting", tt.file, v)
			}
		})
	}
}

// --- docker-compose ---------------------------------------------------------------------

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       *composeBuild     `yaml:"build"`
	Entrypoint  []string          `yaml:"entrypoint"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Profiles    []string          `yaml:"profiles"`
	Restart     string            `yaml:"restart"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	var c composeFile
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "docker-compose.yml")), &c))
	require.NotEmpty(t, c.Services)
	return c
}

// roles sorts the compose services: NATS nodes, collectors (built from the Dockerfile,
// outside the demo profile) and the rest.
func roles(c composeFile) (nats, collectors []string) {
	for name, s := range c.Services {
		switch {
		case strings.HasPrefix(s.Image, "nats:"):
			nats = append(nats, name)
		case s.Build != nil && len(s.Profiles) == 0:
			collectors = append(collectors, name)
		}
	}
	sort.Strings(nats)
	sort.Strings(collectors)
	return nats, collectors
}

// interpolationRE matches ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message}, ${VAR?message}.
var interpolationRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate resolves compose ${...} as docker compose would with env as the .env file.
func interpolate(t *testing.T, s string, env map[string]string) string {
	t.Helper()
	return interpolationRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := interpolationRE.FindStringSubmatch(m)
		name, op, arg := sub[1], sub[2], sub[3]
		v, set := env[name]
		switch op {
		case ":-":
			if v == "" {
				return arg
			}
		case "-":
			if !set {
				return arg
			}
		case ":?", "?":
			assert.True(t, set && (op == "?" || v != ""), "required %s is not set: %s", name, arg)
		}
		return v
	})
}

func TestComposeServices(t *testing.T) {
	c := loadCompose(t)
	nats, collectors := roles(c)
	require.Len(t, nats, 3, "a three-node NATS cluster")
	require.Len(t, collectors, 3, "three collector replicas")
	_, ok := c.Services["clickhouse"]
	require.True(t, ok, "a clickhouse service")

	for name, s := range c.Services {
		for dep, d := range s.DependsOn {
			assert.Contains(t, c.Services, dep, "%s depends on an unknown service", name)
			assert.Equal(t, "service_healthy", d.Condition, "%s waits for %s to be healthy", name, dep)
			assert.NotNil(t, c.Services[dep].Healthcheck, "%s depends on %s being healthy, which has no healthcheck", name, dep)
		}
		assert.NotEmpty(t, s.Restart, "%s has a restart policy", name)
		for _, v := range s.Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") {
				assert.FileExists(t, src, "%s mounts %s", name, src)
			} else {
				assert.Contains(t, c.Volumes, src, "%s uses an undeclared volume", name)
			}
		}
		if s.Build != nil {
			assert.FileExists(t, filepath.Join(s.Build.Context, s.Build.Dockerfile), "%s builds from", name)
		}
	}

	var wantNATS []string
	for _, n := range nats {
		wantNATS = append(wantNATS, "nats://"+n+":4222")
	}
	ids := map[string]string{}
	for _, name := range collectors {
		s := c.Services[name]
		env := s.Environment
		for _, v := range requiredSecrets {
			assert.Contains(t, env[v], "${"+v+":?", "%s takes %s from .env and refuses to start without it", name, v)
		}
		id := env["COLLECTOR_REPLICA_ID"]
		require.NotEmpty(t, id, "%s has a fixed replica id", name)
		assert.NotContains(t, ids, id, "replica id %q of %s is also %s's", id, name, ids[id])
		ids[id] = name

		assert.ElementsMatch(t, wantNATS, strings.Split(env["COLLECTOR_NATS_URL"], ","), "%s knows every NATS node", name)
		host := strings.Split(env["COLLECTOR_CLICKHOUSE_ADDR"], ":")[0]
		assert.Contains(t, c.Services, host, "%s's ClickHouse is a compose service", name)
		for _, dep := range append([]string{host}, nats...) {
			assert.Contains(t, s.DependsOn, dep, "%s waits for %s", name, dep)
		}
		require.NotNil(t, s.Healthcheck, "%s has a healthcheck", name)
		assert.Contains(t, strings.Join(s.Healthcheck.Test, " "), "/healthcheck http://127.0.0.1:8080/readyz")
	}

	sim, ok := c.Services["greenhouse-sim"]
	require.True(t, ok, "a greenhouse-sim service for the demo")
	assert.Equal(t, []string{"demo"}, sim.Profiles)
	assert.Equal(t, []string{"/greenhouse-sim"}, sim.Entrypoint)
}

func TestComposeNATSConfigs(t *testing.T) {
	c := loadCompose(t)
	nats, _ := roles(c)
	for _, name := range nats {
		t.Run(name, func(t *testing.T) {
			s := c.Services[name]
			var conf string
			for _, v := range s.Volumes {
				parts := strings.Split(v, ":")
				if len(parts) >= 2 && strings.HasSuffix(parts[0], ".conf") {
					assert.Contains(t, s.Command, parts[1], "the server runs with its mounted config")
					conf = readFile(t, parts[0])
				}
			}
			require.NotEmpty(t, conf, "%s mounts a config file from deploy/nats/", name)
			assert.Regexp(t, `(?m)^server_name: `+name+`$`, conf)
			assert.Regexp(t, `(?m)^jetstream \{`, conf)
			assert.Regexp(t, `(?m)^\s*store_dir: /data$`, conf)
			assert.Contains(t, strings.Join(s.Volumes, " "), ":/data", "JetStream's store is a volume")
			for _, peer := range nats {
				assert.Contains(t, conf, "nats-route://"+peer+":6222", "routes to %s", peer)
			}
		})
	}
}

// envFile reads KEY=VALUE lines; commented-out assignments ("# KEY=...") are listed in
// documented with their default.
func envFile(t *testing.T, path string) (set, documented map[string]string) {
	t.Helper()
	set, documented = map[string]string{}, map[string]string{}
	assignment := regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)
	sc := bufio.NewScanner(strings.NewReader(readFile(t, path)))
	for sc.Scan() {
		m := assignment.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		documented[m[2]] = m[3]
		if m[1] == "" {
			set[m[2]] = m[3]
		}
	}
	require.NoError(t, sc.Err())
	return set, documented
}

func TestComposeEnvExample(t *testing.T) {
	set, documented := envFile(t, ".env.example")
	for _, v := range requiredSecrets {
		val, ok := set[v]
		assert.True(t, ok, ".env.example has a %s= line to fill in", v)
		assert.Empty(t, val, ".env.example ships no value for the secret %s", v)
	}
	for _, m := range interpolationRE.FindAllStringSubmatch(readFile(t, "docker-compose.yml"), -1) {
		name, op := m[1], m[2]
		assert.Contains(t, documented, name, "docker-compose.yml uses ${%s}, which .env.example does not document", name)
		if op == ":?" || op == "?" {
			assert.Contains(t, set, name, "the required %s is an uncommented line of .env.example", name)
		}
	}
}

// TestComposeCollectorConfigLoads loads each replica's environment, as docker compose
// resolves it from a filled-in .env, through the collector's own configuration loader.
func TestComposeCollectorConfigLoads(t *testing.T) {
	c := loadCompose(t)
	_, collectors := roles(c)
	dotenv, _ := envFile(t, ".env.example")
	for k, v := range testSecrets {
		if _, ok := dotenv[k]; ok {
			dotenv[k] = v
		}
	}
	for _, name := range collectors {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range c.Services[name].Environment {
				env[k] = interpolate(t, v, dotenv)
			}
			cfg, err := collector.LoadConfig(nil, func(k string) string { return env[k] })
			require.NoError(t, err)
			assert.Equal(t, env["COLLECTOR_REPLICA_ID"], cfg.ReplicaID)
			assert.Equal(t, testSecrets["COLLECTOR_API_TOKEN"], cfg.APIToken)
			assert.Equal(t, testSecrets["CLICKHOUSE_PASSWORD"], cfg.ClickHousePassword)
			assert.False(t, cfg.AllowInsecureEndpoints, "plain-http endpoints are off unless .env turns them on")
			assert.NotEmpty(t, cfg.NATSURL, "an external NATS cluster, not the embedded server")
		})
	}
}

// --- Kubernetes -------------------------------------------------------------------------

type k8sMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type k8sDoc struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	node       yaml.Node
}

type deployment struct {
	Spec struct {
		Replicas int `yaml:"replicas"`
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		Strategy struct {
			Type          string `yaml:"type"`
			RollingUpdate struct {
				MaxUnavailable int `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds int    `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		TopologyKey   string `yaml:"topologyKey"`
		LabelSelector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	Containers []container `yaml:"containers"`
}

type container struct {
	Name  string `yaml:"name"`
	Image string `yaml:"image"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			FieldRef *struct {
				FieldPath string `yaml:"fieldPath"`
			} `yaml:"fieldRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	StartupProbe   *httpProbe `yaml:"startupProbe"`
	LivenessProbe  *httpProbe `yaml:"livenessProbe"`
	ReadinessProbe *httpProbe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		ReadOnlyRootFilesystem   bool  `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
}

type httpProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a port name or number
	} `yaml:"httpGet"`
}

type kubeManifests struct {
	resources []string
	docs      map[string]k8sDoc // by kind
}

func (m kubeManifests) decode(t *testing.T, kind string, into any) k8sDoc {
	t.Helper()
	d, ok := m.docs[kind]
	require.True(t, ok, "kustomization.yaml applies a %s", kind)
	require.NoError(t, d.node.Decode(into))
	return d
}

func parseDocs(t *testing.T, path string) []k8sDoc {
	t.Helper()
	var docs []k8sDoc
	dec := yaml.NewDecoder(bytes.NewReader([]byte(readFile(t, path))))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, path)
		var d k8sDoc
		require.NoError(t, n.Decode(&d), path)
		require.NotEmpty(t, d.Kind, "%s: a document without kind", path)
		require.NotEmpty(t, d.Metadata.Name, "%s: a %s without name", path, d.Kind)
		d.node = n
		docs = append(docs, d)
	}
	return docs
}

func loadKube(t *testing.T) kubeManifests {
	t.Helper()
	var k struct {
		Resources []string `yaml:"resources"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(readFile(t, "kubernetes/kustomization.yaml")), &k))
	m := kubeManifests{resources: k.Resources, docs: map[string]k8sDoc{}}
	for _, r := range k.Resources {
		for _, d := range parseDocs(t, filepath.Join("kubernetes", r)) {
			require.NotContains(t, m.docs, d.Kind, "one %s only", d.Kind)
			m.docs[d.Kind] = d
		}
	}
	return m
}

func TestKustomization(t *testing.T) {
	m := loadKube(t)
	assert.NotContains(t, m.resources, "secret.example.yaml", "the Secret template is never applied with real-looking values")
	assert.NotContains(t, m.docs, "Secret")
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "NetworkPolicy", "ServiceAccount"} {
		assert.Contains(t, m.docs, kind, "kustomization.yaml applies a %s", kind)
	}
	assert.NotRegexp(t, `(?m)^namespace:`, readFile(t, "kubernetes/kustomization.yaml"), "namespace-agnostic")
	for kind, d := range m.docs {
		var meta struct {
			Metadata map[string]any `yaml:"metadata"`
		}
		require.NoError(t, d.node.Decode(&meta))
		assert.NotContains(t, meta.Metadata, "namespace", "the %s is namespace-agnostic", kind)
	}
	matches, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	for _, f := range matches {
		base := filepath.Base(f)
		if base == "kustomization.yaml" || base == "secret.example.yaml" {
			continue
		}
		assert.Contains(t, m.resources, base, "%s is listed in kustomization.yaml", base)
	}
}

func TestKubernetesDeployment(t *testing.T) {
	m := loadKube(t)
	var dep deployment
	m.decode(t, "Deployment", &dep)
	spec := dep.Spec
	pod := spec.Template.Spec
	labels := spec.Template.Metadata.Labels

	assert.Equal(t, 3, spec.Replicas)
	assert.Equal(t, "RollingUpdate", spec.Strategy.Type)
	assert.Equal(t, 1, spec.Strategy.RollingUpdate.MaxUnavailable)
	assert.Subset(t, labels, spec.Selector.MatchLabels, "the selector matches the pod template")
	assert.Equal(t, 60, pod.TerminationGracePeriodSeconds)
	assert.True(t, pod.SecurityContext.RunAsNonRoot)
	require.NotEmpty(t, pod.TopologySpreadConstraints)
	for _, c := range pod.TopologySpreadConstraints {
		assert.Subset(t, labels, c.LabelSelector.MatchLabels, "spread over %s counts the collector pods", c.TopologyKey)
	}
	assert.Equal(t, "true", spec.Template.Metadata.Annotations["prometheus.io/scrape"])
	assert.Equal(t, "/metrics", spec.Template.Metadata.Annotations["prometheus.io/path"])
	var sa k8sDoc = m.docs["ServiceAccount"]
	assert.Equal(t, sa.Metadata.Name, pod.ServiceAccountName)

	require.Len(t, pod.Containers, 1)
	c := pod.Containers[0]
	require.Len(t, c.Ports, 2)
	port, metricsPort := c.Ports[0], c.Ports[1]
	assert.Equal(t, "http", port.Name)
	assert.Equal(t, "metrics", metricsPort.Name)
	// /metrics on the API port needs the token; Prometheus scrapes the metrics listener.
	assert.Equal(t, strconv.Itoa(metricsPort.ContainerPort), spec.Template.Metadata.Annotations["prometheus.io/port"])

	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	cmDoc := m.decode(t, "ConfigMap", &cm)
	_, httpPort, _ := strings.Cut(cm.Data["COLLECTOR_HTTP_ADDR"], ":")
	assert.Equal(t, strconv.Itoa(port.ContainerPort), httpPort, "the collector listens on the container port")
	_, metricsAddrPort, _ := strings.Cut(cm.Data["COLLECTOR_METRICS_ADDR"], ":")
	assert.Equal(t, strconv.Itoa(metricsPort.ContainerPort), metricsAddrPort, "the metrics listener is on the metrics port")

	probes := []struct {
		name  string
		probe *httpProbe
		path  string
	}{
		{"startup", c.StartupProbe, "/healthz"},
		{"liveness", c.LivenessProbe, "/healthz"},
		{"readiness", c.ReadinessProbe, "/readyz"},
	}
	for _, p := range probes {
		if !assert.NotNil(t, p.probe, "a %s probe", p.name) {
			continue
		}
		assert.Equal(t, p.path, p.probe.HTTPGet.Path, "%s probe path", p.name)
		assert.Contains(t, []string{port.Name, strconv.Itoa(port.ContainerPort)}, p.probe.HTTPGet.Port, "%s probe port", p.name)
	}

	var replicaID bool
	for _, e := range c.Env {
		if e.Name == "COLLECTOR_REPLICA_ID" {
			replicaID = e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
		}
	}
	assert.True(t, replicaID, "COLLECTOR_REPLICA_ID is the pod name")

	secretDocs := parseDocs(t, "kubernetes/secret.example.yaml")
	require.Len(t, secretDocs, 1)
	var fromConfigMap, fromSecret bool
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil {
			fromConfigMap = fromConfigMap || ef.ConfigMapRef.Name == cmDoc.Metadata.Name
		}
		if ef.SecretRef != nil {
			fromSecret = fromSecret || ef.SecretRef.Name == secretDocs[0].Metadata.Name
		}
	}
	assert.True(t, fromConfigMap, "env from the ConfigMap %q", cmDoc.Metadata.Name)
	assert.True(t, fromSecret, "env from the Secret %q", secretDocs[0].Metadata.Name)

	assert.Equal(t, map[string]string{"cpu": "250m", "memory": "256Mi"}, c.Resources.Requests)
	assert.Equal(t, map[string]string{"cpu": "1", "memory": "1Gi"}, c.Resources.Limits)
	assert.True(t, c.SecurityContext.ReadOnlyRootFilesystem)
	if assert.NotNil(t, c.SecurityContext.AllowPrivilegeEscalation) {
		assert.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	}

	var svc struct {
		Spec struct {
			Selector map[string]string `yaml:"selector"`
			Ports    []struct {
				Name       string `yaml:"name"`
				Port       int    `yaml:"port"`
				TargetPort string `yaml:"targetPort"`
			} `yaml:"ports"`
		} `yaml:"spec"`
	}
	m.decode(t, "Service", &svc)
	assert.Subset(t, labels, svc.Spec.Selector, "the Service selects the collector pods")
	require.Len(t, svc.Spec.Ports, 1)
	assert.Equal(t, "http", svc.Spec.Ports[0].Name)
	assert.Equal(t, 8080, svc.Spec.Ports[0].Port)
	assert.Contains(t, []string{port.Name, strconv.Itoa(port.ContainerPort)}, svc.Spec.Ports[0].TargetPort)

	var pdb struct {
		Spec struct {
			MinAvailable int `yaml:"minAvailable"`
			Selector     struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"selector"`
		} `yaml:"spec"`
	}
	m.decode(t, "PodDisruptionBudget", &pdb)
	assert.Equal(t, 2, pdb.Spec.MinAvailable)
	assert.Less(t, pdb.Spec.MinAvailable, spec.Replicas, "a drain can still evict one replica")
	assert.Subset(t, labels, pdb.Spec.Selector.MatchLabels)
}

func TestKubernetesNetworkPolicy(t *testing.T) {
	m := loadKube(t)
	var np struct {
		Spec struct {
			PodSelector struct {
				MatchLabels map[string]string `yaml:"matchLabels"`
			} `yaml:"podSelector"`
			PolicyTypes []string `yaml:"policyTypes"`
			Ingress     []struct {
				Ports []struct {
					Port int `yaml:"port"`
				} `yaml:"ports"`
			} `yaml:"ingress"`
			Egress []struct {
				Ports []struct {
					Protocol string `yaml:"protocol"`
					Port     int    `yaml:"port"`
				} `yaml:"ports"`
			} `yaml:"egress"`
		} `yaml:"spec"`
	}
	m.decode(t, "NetworkPolicy", &np)
	var dep deployment
	m.decode(t, "Deployment", &dep)
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	m.decode(t, "ConfigMap", &cm)

	assert.Subset(t, dep.Spec.Template.Metadata.Labels, np.Spec.PodSelector.MatchLabels)
	assert.ElementsMatch(t, []string{"Ingress", "Egress"}, np.Spec.PolicyTypes)
	egress := map[string]bool{}
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			egress[p.Protocol+"/"+strconv.Itoa(p.Port)] = true
		}
	}
	natsPort := portOf(t, strings.Split(cm.Data["COLLECTOR_NATS_URL"], ",")[0], "4222")
	chPort := portOf(t, strings.Split(cm.Data["COLLECTOR_CLICKHOUSE_ADDR"], ",")[0], "9000")
	for _, want := range []string{"TCP/" + natsPort, "TCP/" + chPort, "UDP/53", "TCP/53", "TCP/443"} {
		assert.True(t, egress[want], "egress allows %s", want)
	}
	var ingress8080, ingressMetrics bool
	_, metricsPort, _ := strings.Cut(cm.Data["COLLECTOR_METRICS_ADDR"], ":")
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			ingress8080 = ingress8080 || p.Port == 8080
			ingressMetrics = ingressMetrics || strconv.Itoa(p.Port) == metricsPort
		}
	}
	assert.True(t, ingress8080, "ingress allows the HTTP API")
	assert.True(t, ingressMetrics, "ingress allows Prometheus to the metrics listener")
}

// portOf returns the port of "nats://host:port" or "host:port", or def without one.
func portOf(t *testing.T, addr, def string) string {
	t.Helper()
	_, hostPort, found := strings.Cut(addr, "://")
	if !found {
		hostPort = addr
	}
	if i := strings.LastIndex(hostPort, ":"); i >= 0 {
		return hostPort[i+1:]
	}
	return def
}

// TestKubernetesConfigLoads loads the ConfigMap plus a filled-in Secret through the
// collector's configuration loader, and checks the Secret template's placeholders are refused.
func TestKubernetesConfigLoads(t *testing.T) {
	m := loadKube(t)
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	m.decode(t, "ConfigMap", &cm)
	known := knownVars(t)
	for k := range cm.Data {
		assert.True(t, known[k], "ConfigMap key %s is a collector setting", k)
	}
	for _, v := range requiredSecrets {
		assert.NotContains(t, cm.Data, v, "the secret %s is not in the ConfigMap", v)
	}

	secretDocs := parseDocs(t, "kubernetes/secret.example.yaml")
	require.Len(t, secretDocs, 1)
	var secret struct {
		StringData map[string]string `yaml:"stringData"`
	}
	require.NoError(t, secretDocs[0].node.Decode(&secret))
	assert.Equal(t, "Secret", secretDocs[0].Kind)
	for _, v := range requiredSecrets {
		assert.Contains(t, secret.StringData, v, "the Secret template provides %s", v)
	}
	for k := range secret.StringData {
		assert.True(t, known[k], "Secret key %s is a collector setting", k)
	}

	env := map[string]string{"COLLECTOR_REPLICA_ID": "greenhouse-collector-6d4cf56db6-x7k2p"}
	for k, v := range cm.Data {
		env[k] = v
	}
	for k := range secret.StringData {
		env[k] = testSecrets[k]
	}
	cfg, err := collector.LoadConfig(nil, func(k string) string { return env[k] })
	require.NoError(t, err)
	assert.Equal(t, cm.Data["COLLECTOR_NATS_URL"], cfg.NATSURL)
	assert.Equal(t, cm.Data["COLLECTOR_CLICKHOUSE_ADDR"], cfg.ClickHouseAddr)

	for k, v := range secret.StringData {
		env[k] = v
	}
	_, err = collector.LoadConfig(nil, func(k string) string { return env[k] })
	assert.Error(t, err, "the template's placeholder token is refused")
}

// --- image ------------------------------------------------------------------------------

func TestDockerfile(t *testing.T) {
	df := readFile(t, "../Dockerfile")
	assert.Regexp(t, `(?m)^FROM\s.*golang:1\.26\S*\s+AS build$`, df)
	assert.Regexp(t, `(?m)^FROM gcr\.io/distroless/static-debian12:nonroot$`, df)
	assert.Regexp(t, `CGO_ENABLED=0`, df)
	assert.Regexp(t, `go build -trimpath -ldflags="-s -w" -o /out/ [^\n]*\./cmd/collector\b`, df)
	for _, bin := range []string{"collector", "greenhouse-sim", "healthcheck"} {
		assert.Contains(t, df, "COPY --from=build /out/"+bin+" /"+bin, "the image holds /%s", bin)
	}
	for _, pkg := range []string{"../cmd/collector", "../cmd/greenhouse-sim", "healthcheck"} {
		assert.DirExists(t, pkg, "the Dockerfile builds %s", pkg)
	}
	assert.Regexp(t, `(?m)^USER 65532:65532$`, df)
	assert.Regexp(t, `(?m)^EXPOSE 8080$`, df)
	assert.Regexp(t, `(?m)^ENTRYPOINT \["/collector"\]$`, df)

	ignore := strings.Split(readFile(t, "../.dockerignore"), "\n")
	for _, p := range []string{".git", ".env", "**/.env"} {
		assert.Contains(t, ignore, p, ".dockerignore keeps %s out of the build context", p)
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd", "storage", "*.go", "**/*.go", "*.sql", "**/*.sql"} {
		assert.NotContains(t, ignore, p, ".dockerignore must not drop %s", p)
	}
}

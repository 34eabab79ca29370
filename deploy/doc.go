// Package deploy holds the production deployment files of the collector: the
// docker-compose shape (deploy/docker-compose.yml, deploy/nats/, deploy/.env.example), the
// Kubernetes manifests (deploy/kubernetes/) and the image's healthcheck probe
// (deploy/healthcheck/). It has no code; its tests keep those files consistent with the
// collector's configuration and with each other without needing Docker or a cluster.
package deploy

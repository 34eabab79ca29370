package collector

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidateTenantID(t *testing.T) {
	tests := []struct {
		name string
		id   string
		ok   bool
	}{
		{"simple", "acme", true},
		{"all classes", "Acme_co-42", true},
		{"max length", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"too long", strings.Repeat("a", 65), false},
		{"dot is a subject separator", "acme.eu", false},
		{"wildcard", "acme*", false},
		{"gt wildcard", ">", false},
		{"space", "ac me", false},
		{"unicode", "acmé", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateTenantID(tt.id)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}

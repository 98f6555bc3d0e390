package config

import (
	"os"
	"strings"
	"testing"
)

// TestDocumentedConfigsLoad: every YAML sample in the README and the
// reference loads and validates as it stands, so a reader can paste it.
// A sample that leaves a value to the reader must say so in a comment,
// not with a placeholder the loader refuses.
func TestDocumentedConfigsLoad(t *testing.T) {
	// The webhooks sample reads a secret from the environment, as it says.
	t.Setenv("PAGER_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	for _, file := range []string{"../README.md", "../docs/configuration.md", "../docs/mcp.md", "../docs/anomalies.md", "../docs/webhooks.md"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(string(raw), "\n")
		samples := 0
		for i := 0; i < len(lines); i++ {
			fence := strings.TrimSpace(lines[i])
			if fence != "```yaml" {
				continue
			}
			start, indent := i+1, lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " "))]
			var body []string
			for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
				body = append(body, strings.TrimPrefix(lines[i], indent))
			}
			samples++
			c, err := Parse([]byte(strings.Join(body, "\n")))
			if err == nil {
				// The MCP sample needs the secret, which belongs in the environment.
				if c.MCP.Enabled && c.Secret == "" {
					c.Secret = strings.Repeat("s", 32)
				}
				err = c.Validate()
			}
			if err != nil {
				t.Errorf("%s:%d: the YAML sample does not load: %v", file, start, err)
			}
		}
		if samples == 0 {
			t.Errorf("%s: no YAML sample", file)
		}
	}
}

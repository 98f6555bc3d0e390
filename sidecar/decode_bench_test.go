package sidecar

import (
	stdjson "encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/kavach-dev/kavach/api"
)

// The strict decoder against encoding/json on the body of a typical
// authorize call, so its cost on the hot path is measured, not assumed:
//
//	go test ./sidecar -run X -bench Decode -benchmem
const authorizeBody = `{"agentId":"agt_01M84X7E97ECQSJXQVTCHTE9X9","action":"comment","resource":"mcp:github:issues",` +
	`"arguments":{"issue":42,"body":"looks good"},"context":{"ip":"10.0.0.7","userAgent":"my-agent/1.0"}}`

func BenchmarkDecodeAuthorize(b *testing.B) {
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, _ := http.NewRequest("POST", "/v1/authorize", strings.NewReader(authorizeBody))
			var req api.AuthorizeRequest
			if err := decode(r, &req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, _ := http.NewRequest("POST", "/v1/authorize", strings.NewReader(authorizeBody))
			var req api.AuthorizeRequest
			dec := stdjson.NewDecoder(r.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

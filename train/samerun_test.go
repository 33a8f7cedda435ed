package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSameRun: what --out already holds decides whether a run may write there, and a
// refusal names what is wrong with --out (a file where a directory should be is not
// an "unreadable config.json").
func TestSameRun(t *testing.T) {
	cfg := Defaults()
	write := func(path, s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		setup func(out string) string // returns the --out to use
		want  string                  // "" for no error
	}{
		{"absent", func(out string) string { return out }, ""},
		{"empty directory", func(out string) string { os.Mkdir(out, 0o755); return out }, ""},
		{"same configuration", func(out string) string {
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), `{"run_id": "`+cfg.RunID()+`"}`)
			return out
		}, ""},
		{"other configuration", func(out string) string {
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), `{"run_id": "0123456789abcdef"}`)
			return out
		}, "holds a run of another configuration (run id 0123456789abcdef"},
		{"other seed and widths", func(out string) string {
			other := cfg
			other.Seed, other.Hidden = 2, []int{64, 64}
			b, _ := json.MarshalIndent(struct {
				RunID string `json:"run_id"`
				Config
			}{other.RunID(), other}, "", "  ") // as the reporter writes it
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), string(b))
			return out
		}, "holds a run of another configuration (that run → this one: hidden [64,64] → [256,256,256], seed 2 → 1): use another --out"},
		{"not JSON", func(out string) string {
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), "{")
			return out
		}, "config.json is not an mct run's config.json: choose another --out"},
		{"a file", func(out string) string { write(out, "x"); return out }, "is a file, not a directory: choose another --out"},
		{"below a file", func(out string) string { write(out, "x"); return filepath.Join(out, "run") }, "not a directory: choose another --out"},
	} {
		cfg.Out = c.setup(filepath.Join(t.TempDir(), "run"))
		err := sameRun(cfg)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), cfg.Out)):
			t.Errorf("%s: error %v, want one naming %s and saying %q", c.name, err, cfg.Out, c.want)
		}
	}
}

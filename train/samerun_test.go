package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mct/ckpt"
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
	other := cfg
	other.Seed, other.Hidden = 2, []int{64, 64}
	otherRun := func(out string) { // a run of other settings, as the reporter writes config.json
		b, _ := json.MarshalIndent(struct {
			RunID string `json:"run_id"`
			Config
		}{other.RunID(), other}, "", "  ")
		os.Mkdir(out, 0o755)
		write(filepath.Join(out, "config.json"), string(b))
	}
	const otherDiff = "that run → this one: hidden [64,64] → [256,256,256], seed 2 → 1"
	for _, c := range []struct {
		name     string
		setup    func(out string) string // returns the --out to use
		want     string                  // "" for no error
		replaced string                  // what sameRun says of a run it replaces
	}{
		{"absent", func(out string) string { return out }, "", ""},
		{"empty directory", func(out string) string { os.Mkdir(out, 0o755); return out }, "", ""},
		{"same configuration", func(out string) string {
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), `{"run_id": "`+cfg.RunID()+`"}`)
			return out
		}, "", ""},
		{"other configuration, finished", func(out string) string {
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), `{"run_id": "0123456789abcdef"}`)
			write(filepath.Join(out, "summary.json"), `{}`)
			return out
		}, "holds a run of another configuration (run id 0123456789abcdef", ""},
		{"other seed and widths, finished", func(out string) string {
			otherRun(out)
			write(filepath.Join(out, "summary.json"), `{}`)
			return out
		}, "holds a run of another configuration (" + otherDiff + "): use another --out", ""},
		{"other seed and widths, checkpointed", func(out string) string {
			otherRun(out)
			h := ckpt.Header{RunID: other.RunID(), World: 1, Step: 7}
			if err := ckpt.Save(out, h, map[string][]byte{"x": {1}}); err != nil {
				t.Fatal(err)
			}
			if err := ckpt.Commit(out, 7, 1, 0); err != nil {
				t.Fatal(err)
			}
			return out
		}, "holds a run of another configuration (" + otherDiff + ")", ""},
		// Ended before its first checkpoint (diverged, stopped): nothing to keep, replaced.
		{"other seed and widths, unfinished", func(out string) string {
			otherRun(out)
			return out
		}, "", otherDiff},
		{"not JSON", func(out string) string {
			os.Mkdir(out, 0o755)
			write(filepath.Join(out, "config.json"), "{")
			return out
		}, "config.json is not an mct run's config.json: choose another --out", ""},
		{"a file", func(out string) string { write(out, "x"); return out }, "is a file, not a directory: choose another --out", ""},
		{"below a file", func(out string) string { write(out, "x"); return filepath.Join(out, "run") }, "not a directory: choose another --out", ""},
	} {
		cfg.Out = c.setup(filepath.Join(t.TempDir(), "run"))
		replaced, err := sameRun(cfg)
		if replaced != c.replaced {
			t.Errorf("%s: replaced %q, want %q", c.name, replaced, c.replaced)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), cfg.Out)):
			t.Errorf("%s: error %v, want one naming %s and saying %q", c.name, err, cfg.Out, c.want)
		}
	}
}

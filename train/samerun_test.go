package train

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
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

// TestRunGoingIsNotReplaced: a run of other settings with nothing to keep yet because it is
// still going (in its warmup, before any checkpoint) holds its directory's lock from its
// reporter to the end, and is not replaced: the two would write the same files (the new
// config.json beside the old run's summary.json and models). Once it ends it is.
func TestRunGoingIsNotReplaced(t *testing.T) {
	other := Defaults()
	other.Out, other.Seed = filepath.Join(t.TempDir(), "run"), 2
	going, err := newReporter(true, other, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer going.close()
	stray := filepath.Join(ckpt.Dir(other.Out), "step-0000000001")
	if err := os.MkdirAll(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := other
	cfg.Seed = 1
	what, err := sameRun(cfg)
	if what != "that run → this one: seed 2 → 1" || err != nil {
		t.Fatalf("sameRun: replaced %q, error %v; want the run replaceable by its files", what, err)
	}
	want := "run directory " + cfg.Out + " holds a run of another configuration that is still running (that run → this one: seed 2 → 1): use another --out, or wait for it to end"
	if err := replaceRun(cfg, what); err == nil || err.Error() != want {
		t.Errorf("a run going: error %v, want %q", err, want)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("the going run's ckpt/ was touched: %v", err)
	}
	going.close()
	if err := replaceRun(cfg, what); err != nil {
		t.Errorf("the run ended: %v", err)
	}
	if _, err := os.Stat(ckpt.Dir(cfg.Out)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ckpt/ of the replaced run: %v, want it removed", err)
	}
}
